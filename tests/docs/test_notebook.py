"""docs/notebook.md's code, run as a notebook would run it: every cell in order, in one interpreter."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).parents[2]
CHECKS = """
frame = cfexp.table(runs)
assert list(frame["run"]) == ["dot", "dot_bias_sigmoid"]
assert 0.75 < frame.loc[1, "val_loss"] < 0.85, frame  # the lesson's EmbeddingDotBias after 6 epochs
assert len(runs[1].history) == 6
assert set(studies["study"]) == {"quickstart/bias", "quickstart/dot_bias_sigmoid"}
assert studies["test_loss"].notna().all()
top = best.top(1, 5)
assert len(top) == 5 and {"movieId", "title"} <= set(top.columns)
print("notebook ok")
"""


def code_of(page: Path) -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))


def test_the_notebook_page_runs_as_written(tmp_path, monkeypatch):
    code = code_of(ROOT / "docs" / "notebook.md")
    assert "cfexp.train(" in code and "cfexp.sweep(" in code and "cfexp.champion(" in code
    assert len(code.strip().splitlines()) <= 20  # the lesson in about 15 lines
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("CFEXP_STORAGE", raising=False)
    done = subprocess.run(
        [sys.executable, "-c", code + CHECKS], cwd=tmp_path, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "notebook ok"  # the API printed nothing of its own
