"""`make bench-chaos`: the chaos test's kills, many more of them, and the default sweep killed three times.

The soak runs rounds of the e2e test's chaos (tests/test_chaos.py): in a fresh folder, a small sweep killed with
SIGKILL at each instant of a trial's life and at random delays, with and without a helper worker, then one clean
run and the consistency check, until at least KILLS kills. The scenario runs `cfexp sweep experiments/variants.toml
--workers 2` three times, killing one of its processes (drawn) 8–17 s in and then its group, then once more to the
end, and checks both stores.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import mlflow
import optuna

from cfexp.bench.chaos import Chaos, write_experiment
from cfexp.bench.training import SWEEP_EXPERIMENT
from cfexp.search.consistency import inconsistencies

KILLS = 100
TRIALS = 5


def _check(folder: Path, experiment: str, budgets: dict[str, int]) -> list[str]:
    journal = optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    return inconsistencies(optuna.storages.JournalStorage(journal), client, experiment, budgets)


def measure_soak(seed: int = 0) -> dict:
    """Rounds of chaos until KILLS kills; every round's inconsistencies (expected: none)."""
    rounds, kills, started = [], [], time.monotonic()
    while len(kills) < KILLS:
        folder = Path(tempfile.mkdtemp(prefix="cfexp-chaos-"))
        try:
            toml = write_experiment(folder, "chaos", "ml-latest-small", TRIALS)
            chaos = Chaos(folder, toml, seed=seed + len(rounds))
            killed = [k for k in chaos.run(instants=2) if k.killed]
            code = chaos.clean_run()
            problems = _check(folder, "chaos", {"chaos/sig": TRIALS, "chaos/dot": TRIALS})
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        kills += killed
        rounds.append({"kills": len(killed), "clean_exit": code, "inconsistencies": problems})
    phases = Counter(k.what.split(":")[0] if ":" in k.what else "random delay" for k in kills)
    return {
        "kills": len(kills),
        "with_helper": sum(k.workers > 1 for k in kills),
        "phases": dict(phases),
        "rounds": rounds,
        "inconsistencies": sum(len(r["inconsistencies"]) + (r["clean_exit"] != 0) for r in rounds),
        "seconds": time.monotonic() - started,
    }


def measure_scenario(seed: int = 0) -> dict:
    """The default sweep on two workers, killed three times 8–17 s in, then run to the end."""
    from cfexp.config.experiment import load_experiment

    folder = Path(tempfile.mkdtemp(prefix="cfexp-scenario-"))
    try:
        shutil.copytree(SWEEP_EXPERIMENT.parent, folder / "experiments")
        chaos = Chaos(folder, "experiments/variants.toml", seed=seed)
        for _ in range(3):
            chaos.kill_after(8.0, 17.0, workers=2)
        started = time.monotonic()
        code = chaos.clean_run(workers=2, timeout=1800)
        seconds = time.monotonic() - started
        experiment = load_experiment(folder / "experiments" / "variants.toml")
        sweep = experiment.sweep
        budgets = {f"{experiment.name}/{s.name}": s.trials or sweep.trials for s in sweep.studies}
        problems = _check(folder, experiment.name, budgets)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "kills": [k.what for k in chaos.kills if k.killed],
        "clean_exit": code,
        "clean_seconds": seconds,
        "inconsistencies": problems,
    }


def chaos_section(r: dict) -> list[str]:
    lines = ["## make bench-chaos: kills between the two stores", ""]
    soak = r.get("chaos-soak", {})
    if "kills" in soak:
        phases = ", ".join(f"{name} {count}" for name, count in sorted(soak["phases"].items()))
        lines += [
            f"**Soak:** {soak['kills']} SIGKILLs in {len(soak['rounds'])} rounds of the chaos test's sweep "
            f"(2 studies × {TRIALS} trials on ml-latest-small, {soak['with_helper']} of the kills with a helper "
            f"worker), each round ended by one clean run: **{soak['inconsistencies']} inconsistencies** "
            f"({'met' if soak['kills'] >= KILLS and soak['inconsistencies'] == 0 else 'not met'}: ≥ {KILLS} kills, "
            f"0 inconsistencies), {soak['seconds'] / 60:.1f} minutes.",
            "",
            f"Where the kills landed: {phases}.",
            "",
        ]
    scenario = r.get("chaos-scenario", {})
    if "kills" in scenario:
        verdict = "none" if not scenario["inconsistencies"] else "; ".join(scenario["inconsistencies"][:5])
        lines += [
            "**The default sweep killed three times:** `cfexp sweep experiments/variants.toml --workers 2` started "
            "three times, each time one of its processes (drawn) SIGKILLed and then its group, "
            f"{_delays(scenario['kills'])} after the start; then the same command to the end "
            f"(exit {scenario['clean_exit']}, {scenario['clean_seconds']:.0f} s). "
            f"Inconsistencies (a RUNNING run or trial, a budget not exact, a parent not one or not FINISHED, a "
            f"COMPLETE trial without its FINISHED run and metrics, a run without its trial): {verdict}.",
            "",
        ]
    return lines


def _delays(kills: list[str]) -> str:
    """["after 15.6 s", "after 16.7 s"] as "15.6 s and 16.7 s" (one kill per round)."""
    shown = [k.removeprefix("after ") for k in kills]
    return ", ".join(shown[:-1]) + f" and {shown[-1]}" if len(shown) > 1 else "".join(shown)
