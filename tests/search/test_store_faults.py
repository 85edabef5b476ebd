"""Faults in the stores: one line and exit 2 before any work where they can be seen up front; during a sweep,
retried, then the trial fails and the sweep stops with one line, keeping what was logged."""

import subprocess
import time

import mlflow
import optuna
import pytest
from optuna.trial import TrialState
from reliability_helpers import (
    check_consistent,
    finish,
    hold_lock,
    mlflow_runs,
    start_sweep,
    study,
    write_experiment,
)

from cfexp.cli.main import main

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

ONE_STUDY = [
    "--set",
    "sweep.variants=[{name = 'dot', variant = 'dot'}]",
    "--set",
    "schedule=[[1, 0.5]]",
    "--trials",
    "1",
]


def sweep_fails(capsys, *extra) -> str:
    """Run a sweep in this process; it must exit 2 with exactly one line on stderr. Returns that line."""
    assert main(["sweep", "experiments/variants.toml", "--quiet", *ONE_STUDY, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cfexp: error: ") and "Traceback" not in err
    return err


def test_an_unwritable_mlruns_is_refused_up_front(workdir, capsys):
    (workdir / "mlruns").write_text("not a folder")
    assert "mlruns is a file where the store's folder should be" in sweep_fails(capsys)
    assert (workdir / "mlruns").read_text() == "not a folder"


def test_a_corrupt_tracking_store_is_refused_and_left_as_it_was(workdir, capsys):
    database = workdir / "mlruns" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(b"this is not an SQLite database" * 100)
    assert "corrupt or not an SQLite database" in sweep_fails(capsys)
    assert database.read_bytes() == b"this is not an SQLite database" * 100
    assert not (workdir / "mlruns" / "optuna-journal.log").exists()


def test_a_store_held_locked_by_another_process_is_refused(workdir, capsys):
    assert main(["sweep", "experiments/variants.toml", "--quiet", *ONE_STUDY]) == 0
    holder = hold_lock(workdir / "mlruns" / "mlflow.db")
    try:
        assert "is locked by another process" in sweep_fails(capsys)
    finally:
        holder.kill()
        holder.wait()


def test_an_unreachable_study_database_is_refused_without_showing_its_password(workdir, capsys):
    err = sweep_fails(capsys, "--storage", "postgresql://cfexp:s3cret-pw@127.0.0.1:9/optuna")
    assert "cannot open Optuna storage" in err and "s3cret-pw" not in err and "cfexp:***@" in err
    assert not (workdir / "mlruns").exists()


def test_an_unreachable_tracking_server_is_refused_quickly(workdir, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    started = time.monotonic()
    assert "cannot reach the MLflow tracking server at http://127.0.0.1:9" in sweep_fails(capsys)
    assert time.monotonic() - started < 30
    assert not (workdir / "mlruns" / "optuna-journal.log").exists()


def test_an_unwritable_journal_is_refused(workdir, capsys):
    (workdir / "afile").write_text("")
    assert "cannot write the Optuna journal afile/journal.log" in sweep_fails(capsys, "--storage", "afile/journal.log")


def test_a_trial_that_cannot_allocate_its_model_fails_and_the_sweep_goes_on(workdir, capsys):
    huge = "[{name = 'dot', variant = 'dot', enqueue = [{n_factors = 1000000000}]}]"
    assert (
        main(
            [
                "sweep",
                "experiments/variants.toml",
                "--quiet",
                "--set",
                f"sweep.variants={huge}",
                "--set",
                "schedule=[[1, 0.5]]",
                "--set",
                "sweep.max_failures=2",
                "--trials",
                "1",
            ]
        )
        == 0
    )
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log"))
    trials = optuna.load_study(study_name="variants/dot", storage=storage).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "allocate" in trials[0].user_attrs["fail_reason"]
    run = mlflow.MlflowClient().get_run(trials[0].user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and "allocate" in run.data.tags["cfexp.fail_reason"]


@pytest.fixture()
def small_disk(tmp_path):
    """mlruns/artifacts on a 24 MB tmpfs (mounting needs root; skipped where it cannot be done)."""
    artifacts = tmp_path / "mlruns" / "artifacts"
    artifacts.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(artifacts)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield artifacts
    subprocess.run(["umount", "-l", str(artifacts)], check=False)


def test_a_disk_that_fills_mid_sweep_stops_it_with_one_line_and_loses_nothing(tmp_path, small_disk):
    write_experiment(tmp_path)
    sweep = start_sweep(tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        journal = tmp_path / "mlruns" / "optuna-journal.log"
        if journal.exists() and _complete(tmp_path, "rel/sig") >= 1:
            break
        time.sleep(0.2)
    filler = small_disk / "filler"
    with filler.open("wb") as fh, pytest.raises(OSError):  # fill the disk to the last byte
        while True:
            fh.write(b"\0" * 2**16)
            fh.flush()

    code, err = finish(sweep)
    assert code == 1 and err.count("\n") == 1 and "No space left on device" in err and "Traceback" not in err
    found = study(tmp_path, "rel/sig")
    assert not found.get_trials(states=(TrialState.RUNNING,))
    assert [t.state for t in found.trials[:2]] == [TrialState.COMPLETE, TrialState.FAIL]
    assert "tracking failed" in found.trials[1].user_attrs["cfexp.lost"]
    runs = {r.info.run_id: r for r in mlflow_runs(tmp_path)}
    assert "RUNNING" not in {r.info.status for r in runs.values()}
    first = found.trials[0].user_attrs["mlflow_run_id"]
    assert runs[first].info.status == "FINISHED"  # what was logged before the disk filled is all there
    assert "val_loss" in mlflow.artifacts.load_text(f"{runs[first].info.artifact_uri}/history.csv")

    filler.unlink()
    code, err = finish(start_sweep(tmp_path))
    assert code == 0, err
    check_consistent(tmp_path, budget=3)


def _complete(folder, name) -> int:
    try:
        return len(study(folder, name).get_trials(states=(TrialState.COMPLETE,)))
    except KeyError:
        return 0
