"""A store that restarts mid-sweep: the MLflow server down for 20 s, then PostgreSQL down for 20 s, under a real
`cfexp sweep` on `make services`. The sweep waits and goes on (or stops in one line saying what went down, and the
same command resumes), and nothing is lost: both stores agree, through Optuna's and MLflow's APIs."""

import os
import subprocess
import sys
import time
import uuid

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from cfexp.bench.chaos import write_experiment
from cfexp.search.consistency import inconsistencies

pytestmark = pytest.mark.e2e
OUTAGE_SECONDS = 20


def sweep(folder, toml: str, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "cfexp.cli", "sweep", toml, "--quiet"]
    return subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def trials_done(storage, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return 0
    return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def wait_for(condition, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "the sweep made no progress"
        time.sleep(0.5)


def test_a_sweep_outlives_a_tracking_server_restart_and_then_a_database_restart(tmp_path, services, monkeypatch):
    env_of = services.env()
    name = f"restart-{uuid.uuid4().hex[:8]}"
    toml = write_experiment(tmp_path, name, "ml-latest-small", trials=6)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFEXP_", "PG", "MLFLOW_"))} | env_of
    monkeypatch.setenv("PGPASSWORD", env_of["PGPASSWORD"])
    storage = optuna.storages.RDBStorage(env_of["CFEXP_STORAGE"])
    process = sweep(tmp_path, toml, env)

    wait_for(lambda: trials_done(storage, f"{name}/sig") >= 1, process)
    services.stop_mlflow()
    time.sleep(OUTAGE_SECONDS)
    assert process.poll() is None  # it waited
    services.start_one("mlflow")
    done = trials_done(storage, f"{name}/sig")
    wait_for(lambda: trials_done(storage, f"{name}/sig") > done, process)  # and went on

    services.stop_postgres()
    time.sleep(OUTAGE_SECONDS)
    assert process.poll() is None
    services.start_one("postgres")
    _, err = process.communicate(timeout=600)
    if process.returncode:  # it may stop instead of waiting: in one line that says what went down
        assert process.returncode == 1 and len(err.strip().splitlines()) == 1 and "store" in err, err
        rerun = sweep(tmp_path, toml, env)
        _, err = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, err
    assert "Traceback" not in err

    storage = optuna.storages.RDBStorage(env_of["CFEXP_STORAGE"])  # this test's own connections died with the server
    client = mlflow.MlflowClient(env_of["MLFLOW_TRACKING_URI"])
    budgets = {f"{name}/sig": 6, f"{name}/dot": 6}
    assert inconsistencies(storage, client, name, budgets) == []
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=500)
    assert all(r.info.status == "FINISHED" for r in runs)
