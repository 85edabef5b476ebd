"""Chaos between the two stores: real sweeps, with and without a helper worker, killed with SIGKILL at seeded moments
over a trial's whole life (claim, run, training, ranking, logging, told, final fit, summary, registration, and random
instants), then one clean run. Both stores must then agree, as read through Optuna's and MLflow's own APIs."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from cfexp.bench.chaos import LATE_PHASES, TRIAL_PHASES, Chaos, wait_for_stop, write_experiment
from cfexp.search.consistency import inconsistencies
from cfexp.system import faults

pytestmark = pytest.mark.e2e
TRIALS = 4


def test_sigkill_at_any_instant_leaves_both_stores_agreeing(tmp_path: Path, small_dir: Path):
    toml = write_experiment(tmp_path, "chaos", str(small_dir), TRIALS)
    chaos = Chaos(tmp_path, toml, seed=7)
    kills = chaos.run(instants=1)

    killed = [k for k in kills if k.killed]
    assert len(killed) >= 10
    assert {k.what.split(":")[0] for k in killed} >= set(TRIAL_PHASES + LATE_PHASES)
    assert {k.workers for k in killed} == {1, 2}
    assert chaos.clean_run() == 0

    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "mlruns" / "optuna-journal.log"))
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    budgets = {"chaos/sig": TRIALS, "chaos/dot": TRIALS}
    assert inconsistencies(optuna.storages.JournalStorage(journal), client, "chaos", budgets) == []


def cfexp(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", faults.ENV, "CFEXP_STORAGE")}
    command = [sys.executable, "-m", "cfexp.cli", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)


def test_report_evaluate_and_recommend_reconcile_but_never_touch_a_live_process(tmp_path: Path, small_dir: Path):
    toml = write_experiment(tmp_path, "chaos", str(small_dir), 3)
    chaos = Chaos(tmp_path, toml)
    live = chaos.start(workers=1, pause_at="training:2")  # alive, stopped mid-trial: its trial and run are its own
    stopped = wait_for_stop(live, 120)
    assert stopped is not None
    try:
        report = cfexp(tmp_path, "report", toml)
        assert "reconciled" not in report.stderr
        runs = [r for r in _runs(tmp_path) if r.data.tags.get("optuna.trial") == "0"]
        assert [r.info.status for r in runs] == ["RUNNING"]
        assert _study(tmp_path, "chaos/sig").trials[0].state == TrialState.RUNNING
    finally:
        os.killpg(live.pid, signal.SIGCONT)
    assert live.wait(timeout=300) == 0  # left alone, it finished its sweep

    for trials, command in enumerate(
        (("recommend", "--experiment", "chaos", "--user", "1"), ("evaluate", toml, "--folds", "2"), ("report", toml)),
        start=4,
    ):
        chaos.args = ["--trials", str(trials)]
        assert chaos.kill_at("told", workers=1, count=1).killed  # Optuna has the outcome; the run is still RUNNING
        [killed] = [r for r in _running(tmp_path) if r.data.tags.get("cfexp.role") != "study"]
        done = cfexp(tmp_path, *command)
        assert done.returncode == 0, done.stderr
        assert "reconciled the stores after a stopped process" in done.stderr
        run = mlflow.MlflowClient(_tracking(tmp_path)).get_run(killed.info.run_id)
        trial = _study(tmp_path, run.data.tags["optuna.study"]).trials[int(run.data.tags["optuna.trial"])]
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == trial.state.name == "COMPLETE"
        assert run.data.tags["cfexp.ended_by"] == "reconcile"
        assert not _running(tmp_path)


def _tracking(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"


def _runs(folder: Path) -> list:
    client = mlflow.MlflowClient(_tracking(folder))
    return client.search_runs([client.get_experiment_by_name("chaos").experiment_id], max_results=1000)


def _running(folder: Path) -> list:
    return [r for r in _runs(folder) if r.info.status == "RUNNING"]


def _study(folder: Path, name: str) -> optuna.Study:
    journal = optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    return optuna.load_study(study_name=name, storage=optuna.storages.JournalStorage(journal))
