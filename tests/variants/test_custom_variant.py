"""A variant defined in a test file, outside cfexp, swept end to end without touching a cfexp file."""

import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import optuna
import pytest

import cfexp

pytestmark = pytest.mark.e2e
HERE = Path(__file__).parent
EXPERIMENT = """
name = "custom"
variants_from = ["alternating_biases.py"]

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[train]
schedule = "constant"
lr = 1.0
epochs = 4

[sweep]
trials = 3
pruner = "none"

[[sweep.variants]]
name = "alternating"
variant = "alternating_biases"

[[sweep.variants]]
name = "bias"
variant = "bias"

[[runs]]
name = "alternating"
variant = "alternating_biases"
options = {{ damping = 3.0 }}
"""


def cfexp_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cfexp.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_a_variant_in_a_users_file_is_swept_trained_logged_and_reported(tmp_path, small_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CFEXP_STORAGE", raising=False)
    shutil.copy(HERE / "alternating_biases.py", tmp_path)
    (tmp_path / "custom.toml").write_text(EXPERIMENT.format(ratings=small_dir / "ratings.csv"))

    swept = cfexp_cli("sweep", "custom.toml", "--workers", "2", cwd=tmp_path)
    assert swept.returncode == 0, swept.stderr
    assert "custom/alternating" in swept.stdout and "damping=" in swept.stdout  # in the closing table

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "mlruns" / "optuna-journal.log"))
    )
    study = optuna.load_study(study_name="custom/alternating", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3 and all(set(t.params) == {"damping"} for t in done)  # its own space, nothing else

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("custom")
    ours = "tags.`cfexp.variant` = 'alternating_biases'"
    runs = client.search_runs([experiment.experiment_id], f"tags.`optuna.state` != '' and {ours}")
    trials = [r for r in runs if r.data.tags.get("cfexp.role") not in ("study", "final")]
    assert len(trials) == 3
    for run in trials:
        assert run.info.status == "FINISHED"
        curve = client.get_metric_history(run.info.run_id, "movie_bias_sd")  # its trainer's own epoch metric
        assert [m.step for m in curve] == [0, 1, 2, 3]
        assert "lr" not in run.data.params and "n_factors" not in run.data.params  # settings its trainer ignores
    finals = client.search_runs([experiment.experiment_id], f"tags.`cfexp.role` = 'final' and {ours}")
    assert len(finals) == 1 and finals[0].data.metrics["test_loss"] > 0

    trained = cfexp_cli("train", "custom.toml", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "movie_bias_sd" in trained.stdout  # shown in the epoch table

    report = cfexp_cli("report", "custom.toml", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "reports" / "custom" / "report.md").read_text()
    assert "alternating_biases" in text and "4 alternations" in text  # the variant's own fixed-settings words

    cfexp_files = Path(cfexp.__file__).parent.rglob("*.py")
    assert not [f for f in cfexp_files if "alternating_biases" in f.read_text()]  # nothing in cfexp knows it


def test_a_broken_variants_file_is_one_line_and_no_traceback(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('my variant is not ready')\n")
    (tmp_path / "exp.toml").write_text('variants_from = ["broken.py", "missing.py"]\n[[runs]]\nvariant = "dot"\n')
    done = cfexp_cli("train", "exp.toml", cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "broken.py: RuntimeError: my variant is not ready" in done.stderr
