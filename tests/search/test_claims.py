"""Processes that open one study at the same instant: one parent run, and the budget claimed exactly once."""

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

WORKER = Path(__file__).with_name("claim_worker.py")


def test_four_processes_at_the_same_instant_claim_the_budget_once(workdir, small_dir):
    path = workdir / "experiments" / "claims.toml"
    path.write_text(
        f'name = "claims"\n[data]\nratings = "{small_dir}"\n[train]\ndevice = "cpu"\n'
        '[sweep]\ntrials = 40\n[[sweep.variants]]\nname = "dot"\nvariant = "dot"\n'
    )
    start_at = time.time() + 10  # every worker has loaded by then; they open the study within a millisecond
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), str(path), str(start_at), "40"], stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    claimed = [int(w.communicate(timeout=120)[0]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert sum(claimed) == 40 and sum(c > 0 for c in claimed) >= 2
    backend = optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log")
    study = optuna.load_study(study_name="claims/dot", storage=optuna.storages.JournalStorage(backend))
    assert len(study.trials) == 40 and {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    client = mlflow.MlflowClient(default_uri())
    runs = client.search_runs([client.get_experiment_by_name("claims").experiment_id])
    assert [r.data.tags["cfexp.role"] for r in runs] == ["study"]  # one parent, though all four looked at once
