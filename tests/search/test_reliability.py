"""A sweep survives kill -9, Ctrl-C and a second process on the same stores: real processes, checked through the
stores' own APIs."""

import signal
import sqlite3

import mlflow
import pytest
from optuna.trial import TrialState
from reliability_helpers import (
    STUDIES,
    check_consistent,
    finish,
    interrupt,
    mlflow_runs,
    start_sweep,
    study,
    wait_for_running_trial,
    write_experiment,
)

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)


def test_a_killed_sweep_resumes_and_retries_the_lost_trial(tmp_path):
    write_experiment(tmp_path)
    first = start_sweep(tmp_path)
    name, running = wait_for_running_trial(tmp_path, first)
    assert (name, running.number) == ("rel/sig", 0)  # the enqueued warm start, mid-trial
    interrupt(first, signal.SIGKILL)

    code, err = finish(start_sweep(tmp_path))
    assert code == 0, err
    studies = check_consistent(tmp_path, budget=3)
    found, children = studies["rel/sig"]
    killed = found.trials[0]
    assert killed.state == TrialState.FAIL and "is gone" in killed.user_attrs["cfexp.lost"]
    retries = [t for t in found.trials if t.system_attrs.get("retry_history") == [0]]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params == {"lr": 0.5, "n_factors": 12}
    run = {c.info.run_id: c for c in children}
    killed_run = run[killed.user_attrs["mlflow_run_id"]]
    assert killed_run.info.status == "KILLED" and "is gone" in killed_run.data.tags["cfexp.fail_reason"]
    assert run[retries[0].user_attrs["mlflow_run_id"]].data.tags["cfexp.retry_of"] == killed_run.info.run_id
    # The best trial's model is logged, even where the process that trained it was killed before it could.
    for found, children in studies.values():
        best_run = next(c for c in children if c.info.run_id == found.best_trial.user_attrs["mlflow_run_id"])
        assert best_run.data.tags.get("cfexp.model", "").startswith("m-")  # the logged model's id
        assert best_run.data.tags["cfexp.best"] == "true"


def test_two_sweeps_started_together_share_fresh_stores(tmp_path):
    write_experiment(tmp_path, epochs=15)
    processes = [start_sweep(tmp_path), start_sweep(tmp_path)]
    for process in processes:
        code, err = finish(process)
        assert code == 0, err
        assert "Traceback" not in err
    database = tmp_path / "mlruns" / "mlflow.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    studies = check_consistent(tmp_path, budget=3)  # together they ran each budget once, not twice
    owners = {t.user_attrs["cfexp.owner"]["pid"] for found, _ in studies.values() for t in found.trials}
    assert owners == {p.pid for p in processes}  # and both did work
    for found, _ in studies.values():
        assert len({tuple(sorted(t.params.items())) for t in found.trials}) == len(found.trials)  # no point twice
    # each study's final best is registered once, though two processes ended it
    client = mlflow.MlflowClient(f"sqlite:///{database}")
    for name, (found, _) in studies.items():
        versions = client.search_model_versions(f"name = '{name.replace('/', '.')}'")
        assert [v.run_id for v in versions] == [found.best_trial.user_attrs["mlflow_run_id"]]


def test_ctrl_c_stops_at_once_and_the_next_sweep_resumes(tmp_path):
    write_experiment(tmp_path)
    first = start_sweep(tmp_path)
    name, running = wait_for_running_trial(tmp_path, first)
    seconds = interrupt(first, signal.SIGINT)
    err = first.stderr.read()
    assert first.returncode == 130 and seconds < 10
    assert "Traceback" not in err and "interrupted" in err
    stopped = study(tmp_path, name)
    interrupted = stopped.trials[running.number]
    assert interrupted.state == TrialState.FAIL and interrupted.user_attrs["cfexp.lost"] == "interrupted"
    waiting = stopped.get_trials(states=(TrialState.WAITING,))
    assert [t.params for t in waiting] == [interrupted.params]  # its retry, queued with the same params
    assert not stopped.get_trials(states=(TrialState.RUNNING,))
    statuses = {r.info.run_id: r.info.status for r in mlflow_runs(tmp_path)}
    assert statuses[interrupted.user_attrs["mlflow_run_id"]] == "KILLED"
    assert "RUNNING" not in statuses.values()

    code, err = finish(start_sweep(tmp_path))
    assert code == 0, err
    resumed = check_consistent(tmp_path, budget=3)[name][0]
    retry = resumed.trials[waiting[0].number]
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    write_experiment(tmp_path, epochs=40, trials=1)
    first = start_sweep(tmp_path)
    name, running = wait_for_running_trial(tmp_path, first)
    interrupt(first, signal.SIGTERM)
    assert first.returncode == 143 and "terminated" in first.stderr.read()
    assert study(tmp_path, name).trials[running.number].user_attrs["cfexp.lost"] == "interrupted"


def test_a_rerun_of_a_finished_sweep_changes_nothing(tmp_path):
    write_experiment(tmp_path, epochs=3, trials=2)
    assert finish(start_sweep(tmp_path))[0] == 0
    before = {name: len(study(tmp_path, name).trials) for name in STUDIES}
    assert finish(start_sweep(tmp_path))[0] == 0
    assert {name: len(study(tmp_path, name).trials) for name in STUDIES} == before
    check_consistent(tmp_path, budget=2)
