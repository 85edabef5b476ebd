"""Real `cfexp sweep` processes, and checks of both stores through Optuna's and MLflow's own APIs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
from optuna.trial import TrialState

EXPERIMENT = """
name = "rel"

[data]
ratings = "ml-latest-small"

[train]
optimizer = "sgd"
batch_size = 1024
schedule = [[{epochs}, 0.5]]
row_l2 = 0.05
n_factors = 8
device = "cpu"

[sweep]
trials = {trials}
pruner = "none"

[sweep.space]
n_factors = {{ low = 4, high = 16, log = true }}
lr = {{ low = 0.2, high = 0.8, log = true }}
weight_decay = false

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"
enqueue = [{{ lr = 0.5, n_factors = 12 }}]   # a warm start: it must not be lost to a kill

[[sweep.variants]]
name = "dot"
variant = "dot"
"""
STUDIES = ("rel/sig", "rel/dot")


def write_experiment(folder: Path, epochs: int = 25, trials: int = 3) -> Path:
    path = folder / "experiments" / "rel.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXPERIMENT.format(epochs=epochs, trials=trials))
    return path


def ctrl_c_as_in_a_terminal() -> None:
    """In the child before it execs: SIGINT back to its default. A test run started in the background (`cmd &` in
    a script) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_sweep(folder: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "cfexp.cli", "sweep", "experiments/rel.toml", "--quiet", *extra]
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | (env or {})
    return subprocess.Popen(
        command, cwd=folder, env=environment, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_in_a_terminal
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def journal(folder: Path) -> optuna.storages.BaseStorage:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    return optuna.storages.JournalStorage(backend)


def study(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=journal(folder))


def wait_for_running_trial(folder: Path, process: subprocess.Popen, epochs: int = 2, timeout: float = 120):
    """Poll the journal until a trial is RUNNING with `epochs` reported epochs; returns (study name, trial)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if (folder / "mlruns" / "optuna-journal.log").exists():
            for name in STUDIES:
                try:
                    trials = study(folder, name).get_trials(states=(TrialState.RUNNING,))
                except KeyError:
                    continue
                for trial in trials:
                    if len(trial.intermediate_values) >= epochs:
                        return name, trial
        time.sleep(0.2)
    raise AssertionError("no trial got going in time")


def interrupt(process: subprocess.Popen, signum: int = signal.SIGINT) -> float:
    """Send a signal; the seconds the process took to exit."""
    started = time.monotonic()
    process.send_signal(signum)
    process.wait(timeout=60)
    return time.monotonic() - started


def mlflow_runs(folder: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("rel")
    return client.search_runs([experiment.experiment_id], max_results=5000)


def check_consistent(folder: Path, budget: int) -> dict:
    """What a user checks after a sweep: both stores agree, nothing RUNNING, the budgets exact, parents right."""
    runs = mlflow_runs(folder)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    parents = [r for r in runs if r.data.tags.get("cfexp.role") == "study"]
    assert sorted(r.data.tags["optuna.study"] for r in parents) == sorted(STUDIES)  # one parent per study
    studies = {}
    for parent in parents:
        name = parent.data.tags["optuna.study"]
        found = study(folder, name)
        trials = found.trials
        assert len({t.number for t in trials}) == len(trials)
        states = [t.state for t in trials]
        assert TrialState.RUNNING not in states
        assert states.count(TrialState.COMPLETE) + states.count(TrialState.PRUNED) == budget
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        by_trial = {t.number: t for t in trials}
        for child in children:  # no orphans: every child run belongs to a trial that points back at it
            trial = by_trial[int(child.data.tags["optuna.trial"])]
            assert trial.user_attrs.get("mlflow_run_id") == child.info.run_id
            assert child.data.tags["optuna.state"] == ("FAIL" if trial.state == TrialState.FAIL else trial.state.name)
        ran = [t for t in trials if t.state != TrialState.WAITING]
        assert len(children) == len(ran)
        best = found.best_trial
        assert parent.info.status == "FINISHED"
        assert parent.data.tags["best.trial"] == str(best.number)
        assert parent.data.tags["best.mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
        assert abs(parent.data.metrics["best_val_loss"] - best.value) < 1e-12
        studies[name] = (found, children)
    return studies


def hold_lock(database: Path) -> subprocess.Popen:
    """Another process that takes SQLite's write lock on a database and keeps it until killed."""
    code = (
        "import sqlite3, sys, time\n"
        f"c = sqlite3.connect({str(database)!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE')\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder
