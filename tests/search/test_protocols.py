"""Sweeps under every protocol: no test row reaches a trial under any split, the default experiment under each split
on studies of its own with every study's test figures, and implicit feedback with text ids. Real sweeps into
temporary stores, read back through Optuna's and MLflow's APIs."""

import json
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from tiny import SMALL_STUDIES

from cfexp.cli.main import main
from cfexp.config.data_table import DataConfig
from cfexp.config.experiment import load_experiment
from cfexp.data.dataset import load_dataset
from cfexp.track import default_uri
from cfexp.variants import get_variant

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

LEAK = (
    """
name = "leak"

[data]
ratings = "{ratings}"
split = "{split}"
test_pct = 0.2
val_pct = 0.1

[train]
optimizer = "sgd"
batch_size = 512
schedule = [[4, 0.5]]
row_l2 = 0.05
restore_best = true
device = "cpu"

[sweep]
trials = 2
pruner = "median"
pruner_startup_trials = 1
pruner_warmup_epochs = 1

"""
    + SMALL_STUDIES
    + """

[[sweep.variants]]
name = "ease"
variant = "ease"
objective = "ndcg@10"
"""
)


def journal(folder: Path = Path()) -> optuna.storages.BaseStorage:
    backend = optuna.storages.journal.JournalFileBackend(str(folder / "mlruns" / "optuna-journal.log"))
    return optuna.storages.JournalStorage(backend)


def studies(folder: Path = Path()) -> dict[str, optuna.Study]:
    storage = journal(folder)
    names = [s.study_name for s in storage.get_all_studies()]
    return {name: optuna.load_study(study_name=name, storage=storage) for name in names}


def what_trials_saw(study: optuna.Study) -> list:
    """Everything a trial's outcome is: its point, value, epochs' reports and history (no timings)."""
    seen = []
    for t in study.trials:
        history = [{k: v for k, v in h.items() if "seconds" not in k} for h in t.user_attrs.get("history", [])]
        seen.append((t.state, t.params, t.value, dict(t.intermediate_values), history, t.user_attrs.get("ranking")))
    return seen


@pytest.mark.parametrize("split", ["random", "temporal", "user-last"])
def test_perturbing_the_test_rows_changes_no_trials_value(split, workdir, ratings, monkeypatch):
    frame = ratings.frame[ratings.frame.userId <= 120][["userId", "movieId", "rating", "timestamp"]]
    frame.to_csv(workdir / "ratings.csv", index=False)
    settings = {"split": split, "test_pct": 0.2, "val_pct": 0.1}
    test_rows = load_dataset(DataConfig(ratings=str(workdir / "ratings.csv"), **settings)).split.test
    perturbed = frame.copy()
    draws = np.random.default_rng(0).choice(np.arange(0.5, 5.01, 0.5), len(test_rows))
    perturbed.iloc[test_rows, perturbed.columns.get_loc("rating")] = draws
    perturbed.to_csv(workdir / "perturbed.csv", index=False)
    seen, finals = {}, {}
    for name in ("ratings", "perturbed"):
        (workdir / name).mkdir()
        (workdir / name / "leak.toml").write_text(LEAK.format(ratings=workdir / f"{name}.csv", split=split))
        monkeypatch.chdir(workdir / name)
        assert main(["sweep", "leak.toml", "--quiet"]) == 0  # the same experiment and studies, by name
        found = studies()
        seen[name] = {study: what_trials_saw(found[study]) for study in sorted(found)}
        finals[name] = {study: found[study].user_attrs["cfexp.final"] for study in sorted(found)}
    assert seen["ratings"] == seen["perturbed"]  # same trials, same values: no test row reached a trial
    assert sum(len(v) for v in seen["ratings"].values()) >= 5
    for study in ("leak/bias", "leak/sig"):  # while the test figures moved: the perturbation was there to see
        assert finals["ratings"][study]["test_loss"] != finals["perturbed"][study]["test_loss"]


@pytest.fixture(scope="module")
def protocol_sweeps(tmp_path_factory):
    """The default experiment swept under temporal and user-last (its own budgets, two workers), in one folder."""
    folder = tmp_path_factory.mktemp("protocols")
    (folder / "experiments").mkdir()
    source = Path(__file__).parents[2] / "experiments" / "variants.toml"
    (folder / "experiments" / "variants.toml").write_text(source.read_text())
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for split in ("temporal", "user-last"):
            command = ["sweep", "experiments/variants.toml", "--set", f"data.split={split}", "--workers", "2"]
            assert main([*command, "--quiet", "--summary", f"{split}.json"]) == 0
    return folder


@pytest.mark.parametrize("split", ["temporal", "user-last"])
def test_the_default_sweep_under_a_time_split_gives_every_study_test_figures(protocol_sweeps, split):
    summary = json.loads((protocol_sweeps / f"{split}.json").read_text())
    experiment = load_experiment(protocol_sweeps / "experiments" / "variants.toml")
    assert summary["experiment"] != "variants" and summary["experiment"].startswith("variants-")
    assert summary["dataset"]["protocol"]["split"] == split
    rows = {row["study"].split("/", 1)[1]: row for row in summary["studies"]}
    assert set(rows) == {spec.name for spec in experiment.sweep.studies}
    for spec in experiment.sweep.studies:
        row = rows[spec.name]
        assert row["final_run_id"], f"{spec.name} has no final model"
        assert np.isfinite(row["test_ndcg_at_10"])
        if get_variant(spec.run.variant).rates:
            assert np.isfinite(row["test_loss"])
    cold = summary["dataset"]["protocol"]["cold"]["test"]
    if split == "temporal":  # most of the latest ratings' users came after train + validation
        assert cold["users"] > cold["of_users"] / 2 and cold["rows"] > 0
    else:  # each user keeps a history: only movies can be cold
        assert cold["users"] == 0 and summary["dataset"]["split"]["test"] == 671


def test_each_split_has_studies_of_its_own_and_a_random_rerun_reuses_none(protocol_sweeps, monkeypatch, capsys):
    monkeypatch.chdir(protocol_sweeps)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = studies()
    keys = {name: study.user_attrs["cfexp.data"] for name, study in before.items()}
    assert {key["split"] for key in keys.values()} == {"temporal", "user-last"}
    assert all(key["timestamps"] for key in keys.values())  # a time split depends on the timestamps too
    assert len({name.split("/")[0] for name in before}) == 2
    command = ["sweep", "experiments/variants.toml", "--set", "data.split=random", "--trials", "1"]
    assert main([*command, "--no-bars"]) == 0
    err = capsys.readouterr().err
    assert "resuming" not in err and "0 trial(s) to run" not in err
    after = studies()
    new = set(after) - set(before)
    assert len(new) == len(load_experiment("experiments/variants.toml").sweep.studies)
    assert all("split" not in after[name].user_attrs["cfexp.data"] for name in new)  # random: the key it had


def test_the_report_draws_each_time_split_and_counts_its_cold_rows(protocol_sweeps, monkeypatch):
    monkeypatch.chdir(protocol_sweeps)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for split, words in (("temporal", "A global time cut"), ("user-last", "Each user's own history")):
        assert main(["report", "experiments/variants.toml", "--set", f"data.split={split}"]) == 0
        name = json.loads(Path(f"{split}.json").read_text())["experiment"]
        text = (protocol_sweeps / "reports" / name / "report.md").read_text()
        protocol = text[text.index("Protocol: the splits") : text.index("## 3.")]
        assert words in protocol and "![The splits](splits.png)" in protocol
        assert "| test | train + validation |" in protocol  # the cold rows of test
        assert (protocol_sweeps / "reports" / name / "splits.png").stat().st_size > 10_000


def test_an_implicit_file_with_text_ids_sweeps_the_rankers_and_skips_the_rest(workdir, ratings, capsys):
    clicks = pd.DataFrame(
        {"user": "u" + ratings.frame.userId.astype(str), "item": "m" + ratings.frame.movieId.astype(str)}
    )
    clicks.to_csv(workdir / "clicks.tsv", sep="\t", index=False)  # two columns: who chose what
    columns = 'data.columns={user="user", item="item"}'
    command = ["sweep", "experiments/variants.toml", "--set", f"data.ratings={workdir / 'clicks.tsv'}"]
    command += ["--set", columns, "--set", 'data.separator="\t"', "--summary", "implicit.json", "--no-bars"]
    assert main(command) == 0
    err = capsys.readouterr().err.splitlines()
    experiment = load_experiment("experiments/variants.toml")
    raters = [spec.name for spec in experiment.sweep.studies if get_variant(spec.run.variant).rates]
    skipped = [line for line in err if "skipped study" in line]
    assert len(skipped) == len(raters) == 11
    assert all("predicts ratings" in line and "implicit feedback" in line for line in skipped)
    summary = json.loads(Path("implicit.json").read_text())
    assert summary["dataset"]["implicit"] is True
    rows = {row["study"].split("/", 1)[1]: row for row in summary["studies"]}
    assert set(rows) == {"popular", "bpr", "ease", "ials", "dlae", "itemknn", "multvae", "recvae"}
    assert all(row["test_ndcg_at_10"] > 0 for row in rows.values())
    assert "positives" not in rows["ease"]["params"]  # a rating threshold means nothing without ratings
    # the final model speaks the file's ids
    capsys.readouterr()
    model = f"runs:/{rows['ease']['final_run_id']}/model"
    assert main(["recommend", "--model", model, "--user", "u15", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "top 3 for user u15" in out and out.count(" m") >= 3
    client = mlflow.MlflowClient(default_uri())
    parent = client.get_run(rows["ease"]["parent_run_id"])
    assert parent.data.params["data.implicit"] == "true" and parent.data.params["data.relevance"] == "0.0"
