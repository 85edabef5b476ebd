"""One experiment swept across settings and read across them: real sweeps into temporary stores, a report whose
figures and sentences come from those stores, a conclusion that flips and one that holds everywhere, a setting
refused before anything is written, and a benchmark killed mid-way that finishes when run again."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from tiny import SMALL_STUDIES

from cfexp.cli.main import main
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

FLIP = """
name = "flip"
variants_from = ["constant.py"]

[data]
ratings = "three.csv"
test_pct = 0.2
val_pct = 0.2

[train]
device = "cpu"

[sweep]
trials = 1

[[sweep.variants]]
name = "three"
variant = "constant"
options = {{ level = 3.0 }}

[[sweep.variants]]
name = "four"
variant = "constant"
options = {{ level = 4.0 }}

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@10"

[across]
"data.ratings" = {files}
"""


def ratings_around(level: float, path: Path, seed: int) -> None:
    """300 ratings of 30 users, each within a star of `level`, with timestamps."""
    rng = np.random.default_rng(seed)
    rows = [(u, m) for u in range(1, 31) for m in rng.choice(np.arange(1, 41), 10, replace=False)]
    frame = pd.DataFrame(rows, columns=["userId", "movieId"])
    frame["rating"] = level + rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], len(frame))
    frame["timestamp"] = 1_000_000 + np.arange(len(frame))
    frame.to_csv(path, index=False)


@pytest.fixture()
def flip(workdir):
    shutil.copy(Path(__file__).parent / "constant.py", workdir / "constant.py")
    ratings_around(3.0, workdir / "three.csv", 0)
    ratings_around(3.0, workdir / "three_b.csv", 1)
    ratings_around(4.0, workdir / "four.csv", 2)

    def write(files: list[str]) -> str:
        (workdir / "flip.toml").write_text(FLIP.format(files=str(files).replace("'", '"')))
        return "flip.toml"

    return write


def conclusions(workdir: Path) -> list[str]:
    text = (workdir / "reports" / "flip-across" / "report.md").read_text()
    return [line for line in text.splitlines() if line.startswith("- ")]


def test_a_conclusion_that_flips_holds_in_one_of_two_settings(flip, workdir):
    experiment = flip(["three.csv", "four.csv"])
    assert main(["sweep", experiment, "--quiet"]) == 0
    assert main(["report", experiment]) == 0
    said = conclusions(workdir)
    assert any(
        s.startswith("- `three` is the champion") and "holds in 1 of 2 settings (ratings=three.csv)" in s for s in said
    )
    assert any(
        s.startswith("- `four` is the champion") and "holds in 1 of 2 settings (ratings=four.csv)" in s for s in said
    )
    beats = next(s for s in said if s.startswith("- `three` beats `four` on test MSE"))
    assert "holds in 1 of 2 settings (ratings=three.csv), significant in 1." in beats
    text = (workdir / "reports" / "flip-across" / "report.md").read_text()
    assert "need at least 3 settings" in text  # too few for Friedman's test: said in words

    # every figure of the matrix is the final run's, as MLflow holds it
    matrix = pd.read_csv(workdir / "reports" / "flip-across" / "matrix.csv")
    client = mlflow.MlflowClient(default_uri())
    for row in matrix.itertuples():
        final = client.get_run(row.final_run_id)
        assert final.data.tags["cfexp.role"] == "final" and final.data.tags["cfexp.experiment"] == row.experiment
        if row.rates:
            assert final.data.metrics["test_loss"] == pytest.approx(row.test_mse, abs=1e-12)
        assert final.data.metrics["test_ndcg_at_10"] == pytest.approx(row.test_ndcg, abs=1e-12)
    assert set(matrix.setting) == {"ratings=three.csv", "ratings=four.csv"} and len(matrix) == 6

    # one parent run for the benchmark, holding the report, with a child per setting tagged with its experiment
    benchmark = client.get_experiment_by_name("flip-across")
    (parent,) = client.search_runs([benchmark.experiment_id], "tags.`cfexp.role` = 'benchmark'")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/index.html", "report/matrix.csv"} <= artifacts
    children = client.search_runs([benchmark.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.data.tags["cfexp.experiment"] for c in children} == set(matrix.experiment)
    for child in children:
        assert (
            client.get_experiment_by_name(child.data.tags["cfexp.experiment"]).experiment_id
            in (parent.data.tags["mlflow.note.content"])
        )


def test_a_conclusion_that_holds_everywhere_says_all(flip, workdir):
    experiment = flip(["three.csv", "three_b.csv"])
    assert main(["sweep", experiment, "--quiet"]) == 0
    assert main(["report", experiment]) == 0
    said = conclusions(workdir)
    champion = next(s for s in said if "is the champion" in s)
    assert champion.startswith("- `three` is the champion") and "holds in 2 of 2 settings (all)" in champion
    assert not any(s.startswith("- `four` is the champion") for s in said)
    # the notebook's twin writes the same report and returns its matrix
    import cfexp

    frame = cfexp.benchmark(experiment)
    written = pd.read_csv(workdir / "reports" / "flip-across" / "matrix.csv")
    assert frame[["setting", "study", "test_mse"]].equals(written[["setting", "study", "test_mse"]])


def test_a_setting_that_cannot_run_is_refused_before_anything_is_written(flip, workdir, capsys):
    experiment = flip(["three.csv"])
    pd.read_csv(workdir / "three.csv").drop(columns="timestamp").to_csv(workdir / "untimed.csv", index=False)
    code = main(
        ["sweep", experiment, "--across", "data.ratings=three.csv,untimed.csv", "--across", "data.split=user-last"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert (
        err[0].startswith("cfexp: error: setting ratings=untimed.csv, split=user-last:") and "no timestamps" in err[0]
    )
    assert not (workdir / "mlruns" / "mlflow.db").exists() and not (workdir / "mlruns" / "optuna-journal.log").exists()


KILLED = (
    """
name = "killed"
variants_from = ["constant.py"]

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[train]
device = "cpu"
optimizer = "sgd"
batch_size = 512
schedule = [[3, 0.5]]
row_l2 = 0.05

[sweep]
trials = 2
pruner = "none"

"""
    + SMALL_STUDIES
    + """

[[sweep.variants]]
name = "three"
variant = "constant"
options = {{ level = 3.0 }}
trials = 1

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@10"
trials = 1

[across]
"data.split" = ["random", "temporal", "user-last"]
"""
)


def what_each_study_holds(folder: Path) -> dict:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    storage = optuna.storages.JournalStorage(backend)
    found = {}
    for summary in storage.get_all_studies():
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        final = study.user_attrs.get("cfexp.final", {})
        trials = [(t.number, t.state.name, t.value) for t in study.trials]
        found[summary.study_name] = (trials, final.get("state"), final.get("run_id"))
    return found


def test_a_benchmark_killed_midway_finishes_when_run_again(workdir, ratings):
    shutil.copy(Path(__file__).parent / "constant.py", workdir / "constant.py")
    frame = ratings.frame[ratings.frame.userId <= 150][["userId", "movieId", "rating", "timestamp"]]
    frame.to_csv(workdir / "ratings.csv", index=False)
    (workdir / "killed.toml").write_text(KILLED.format(ratings=workdir / "ratings.csv"))
    command = [sys.executable, "-m", "cfexp.cli", "sweep", "killed.toml", "--no-bars"]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    for line in first.stdout:
        if line.startswith("== setting 2 of 3"):  # setting 1 is done, setting 2 starting
            time.sleep(np.random.default_rng().uniform(0, 3))
            os.killpg(first.pid, signal.SIGKILL)
            break
    first.wait()
    assert first.returncode == -signal.SIGKILL
    before = what_each_study_holds(workdir)
    done = {name: held for name, held in before.items() if name.startswith("killed/")}  # setting 1: random
    assert len(done) == 4 and all(state == "COMPLETE" for _, state, _ in done.values())

    assert subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    after = what_each_study_holds(workdir)
    assert {name: after[name] for name in done} == done  # the finished setting was left as it was
    assert len(after) == 12 and all(state == "COMPLETE" for _, state, _ in after.values())
    assert main(["report", "killed.toml"]) == 0
    matrix = pd.read_csv(workdir / "reports" / "killed-across" / "matrix.csv")
    assert len(matrix) == 12 and matrix.final_run_id.notna().all()
    text = (workdir / "reports" / "killed-across" / "report.md").read_text()
    assert (
        "Friedman's test over the 3 settings" in text
        and (workdir / "reports" / "killed-across" / "cd_ndcg.png").exists()
    )
