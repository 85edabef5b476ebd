"""`CFEXP_STORAGE` alone points every command at the study store: no local journal is looked for or made."""

import json
import subprocess
import sys

import pytest
from tiny import TINY

pytestmark = pytest.mark.e2e


def test_report_and_evaluate_read_the_studies_from_cfexp_storage(tmp_path, small_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "tiny.toml").write_text(TINY.format(ratings=small_dir / "ratings.csv") + "\n[eval]\nfolds = 2\n")
    env = {"CFEXP_STORAGE": f"sqlite:///{tmp_path / 'studies.db'}"}
    monkeypatch.setenv("CFEXP_STORAGE", env["CFEXP_STORAGE"])

    def cfexp(*args):
        done = subprocess.run([sys.executable, "-m", "cfexp.cli", *args], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    cfexp("sweep", "tiny.toml", "--quiet")
    assert (tmp_path / "studies.db").stat().st_size > 0
    cfexp("report", "tiny.toml")
    assert "tiny/dot" in (tmp_path / "reports" / "tiny" / "report.md").read_text()
    cfexp("evaluate", "tiny.toml", "--quiet", "--summary", "evaluation.json")
    folds = json.loads((tmp_path / "evaluation.json").read_text())["folds"]
    assert {row["study"] for row in folds} == {"dot", "sig"} and len(folds) == 4  # 2 studies × 2 folds
    assert not (tmp_path / "mlruns" / "optuna-journal.log").exists()  # never made, never needed
