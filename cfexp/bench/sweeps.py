"""`make bench`'s sweep measurements: the default sweep as real `cfexp sweep` processes on fresh stores.

One process, then two started together on the same stores, measured the same way in the same run: the wall from
starting the processes to the last exit, their CPU time, and what the stores hold afterwards.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cfexp.bench.training import SWEEP_EXPERIMENT

TABLE_KEYS = ("study", "variant", "objective", "best_val_loss", "ndcg_at_10", "recall_at_10", "hr_at_10", "map_at_10")


def run_sweeps(count: int, device: str, experiment: Path = SWEEP_EXPERIMENT, extra: tuple[str, ...] = ()) -> dict:
    """`count` processes of `cfexp sweep EXPERIMENT [extra]` started together in one fresh folder, and what they
    left in the stores."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cfexp.cli",
                    "sweep",
                    str(experiment),
                    "--quiet",
                    "--device",
                    device,
                    "--summary",
                    f"summary-{i}.json",
                    *extra,
                ],
                cwd=tmp,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(count)
        ]
        errors = [p.communicate()[1] for p in processes]
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        failed = [e.strip().splitlines()[-1] for p, e in zip(processes, errors, strict=True) if p.returncode]
        if failed:
            return {"error": failed[0]}
        summaries = [json.loads((Path(tmp) / f"summary-{i}.json").read_text()) for i in range(count)]
        stores = _stores(Path(tmp))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    best = min((s["best"] for s in summaries if s["best"]), key=lambda b: b["best_val_loss"])
    return {
        "processes": count,
        "workers": summaries[0].get("workers", 1),
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "cpu_seconds_per_trial": cpu / max(stores["trials"], 1),
        "sweep_seconds": max(s["seconds"] for s in summaries),
        "tracking_seconds": sum(s["tracking_seconds"] for s in summaries),
        "background_seconds": sum(s["tracking_background_seconds"] for s in summaries),
        "best_val_mse": best["best_val_loss"],
        "best": best["name"],
        "peak_rss_mb_children": after.ru_maxrss / 1024,
        "table": [{k: row.get(k) for k in TABLE_KEYS} for row in summaries[0].get("studies", [])],
        **stores,
    }


def _stores(folder: Path) -> dict:
    """Per study, complete + pruned trials against its budget; trials per process; their summed seconds; anything
    left running."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    )
    studies, best, per_process, running, trials, trial_seconds = {}, {}, {}, 0, 0, 0.0
    for summary in optuna.get_all_study_summaries(storage):
        found = optuna.load_study(study_name=summary.study_name, storage=storage)
        states = [t.state for t in found.trials]
        studies[summary.study_name] = states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED)
        best[summary.study_name] = [found.best_value, found.best_params]
        running += states.count(TrialState.RUNNING)
        trials += len(states)
        for t in found.trials:
            pid = str(t.user_attrs.get("cfexp.owner", {}).get("pid"))
            per_process[pid] = per_process.get(pid, 0) + 1
            if t.datetime_complete is not None:
                trial_seconds += (t.datetime_complete - t.datetime_start).total_seconds()
    return {
        "studies": studies,
        "best_per_study": best,
        "trials": trials,
        "trial_seconds": trial_seconds,  # summed over trials, start to end: the work, whoever ran it
        "trials_per_process": sorted(per_process.values()),
        "running": running,
    }


def measure_sweep(device: str) -> dict:
    """c. The default sweep, one process."""
    return run_sweeps(1, device)


def measure_sweep_pair(device: str) -> dict:
    """e. The default sweep, two processes started together on the same fresh stores."""
    return run_sweeps(2, device)


def measure_sweep_workers(device: str) -> dict:
    """f. The default sweep, one command with two local workers (whole studies each)."""
    return run_sweeps(1, device, extra=("--workers", "2"))


def measure_sweep_repeats(device: str, pairs: int = 2) -> dict:
    """f, again: `pairs` more pairs of one-worker and two-worker runs, back to back in alternating order (two
    workers first in the first pair), because the one-worker run's use of a second thread varies with the load."""
    measure = {"one": measure_sweep, "two": measure_sweep_workers}
    runs = []
    for i in range(pairs):
        order = ("two", "one") if i % 2 == 0 else ("one", "two")
        runs.append({"first": order[0], **{which: measure[which](device) for which in order}})
    return {"pairs": runs}
