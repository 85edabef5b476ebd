"""The protocol a reported number rests on: studies tied to their data, a test split no search sees, and a search
that searches. Real sweeps into temporary stores, read back through Optuna's and MLflow's APIs."""

import json
import signal
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest

from cfexp.cli.main import main
from cfexp.config.experiment import load_experiment
from cfexp.config.sweep_table import DEFAULT_SAMPLER
from cfexp.data import ratings as data
from cfexp.data.key import DataKey
from cfexp.search import samplers
from cfexp.track import default_uri
from cfexp.variants import REGISTRY, runner

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

SMALL = """
name = "small"

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[3, 0.5]]
row_l2 = 0.05
restore_best = true
device = "cpu"

[sweep]
trials = 3
pruner = "none"

[sweep.space]
n_factors = {{ low = 4, high = 32, log = true }}
lr = {{ low = 0.05, high = 1.0, log = true }}
row_l2 = {{ low = 0.01, high = 0.2, log = true }}
weight_decay = false

[[sweep.variants]]
name = "a"
variant = "dot_bias_sigmoid"

[[sweep.variants]]
name = "b"
variant = "dot_bias_sigmoid"

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@10"
trials = 1
"""
EASE = """
[[sweep.variants]]
name = "ease"
variant = "ease"
objective = "ndcg@10"
trials = 1
space.n_factors = false
space.lr = false
space.row_l2 = false
"""


@pytest.fixture()
def small(workdir, small_dir):
    path = workdir / "experiments" / "small.toml"
    path.write_text(SMALL.format(ratings=small_dir))
    return path


def journal() -> optuna.storages.BaseStorage:
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log"))


def studies() -> dict[str, optuna.Study]:
    storage = journal()
    return {
        s.study_name: optuna.load_study(study_name=s.study_name, storage=storage) for s in storage.get_all_studies()
    }


def other_ratings(path, ratings) -> str:
    """Another MovieLens-format file: the embedded data's first 30,000 ratings."""
    ratings.frame[["userId", "movieId", "rating"]].iloc[:30000].to_csv(path, index=False)
    return str(path)


def test_a_sweep_on_other_data_never_resumes_or_mixes_the_default_sweeps_studies(workdir, ratings, capsys):
    default = ["sweep", "experiments/variants.toml", "--trials", "1", "--summary", "default.json"]
    assert main(default) == 0
    first = capsys.readouterr()
    assert "test MSE" in first.out  # the closing table: test next to validation
    assert main([*default[:4], "--ratings", other_ratings(workdir / "other.csv", ratings)]) == 0
    second = capsys.readouterr()
    assert "0 trial(s) to run" not in second.err and "resuming" not in second.err
    # the other file has no timestamps: the time-aware study is left out, in words
    assert "skipped study bfm: its time feature group needs timestamps" in second.err
    found = studies()
    assert len(found) == 2 * len(load_experiment("experiments/variants.toml").sweep.studies) - 1  # each data's own
    digests = {ratings.digest, data.load_ratings(str(workdir / "other.csv")).digest}
    assert {study.user_attrs["cfexp.data"]["digest"] for study in found.values()} == digests
    for name, study in found.items():
        recorded = DataKey(**study.user_attrs["cfexp.data"])
        keys = {t.user_attrs.get("cfexp.data") for t in study.trials}
        assert keys == {recorded.key}, f"{name} holds trials of other data"
    summary = json.loads((workdir / "default.json").read_text())
    best = summary["best"]
    assert best["test_loss"] is not None and best["best_val_loss"] is not None
    assert best["test_ranking"]["ndcg_at_10"] > 0
    # the registry's champion is the final model, of the default data
    client = mlflow.MlflowClient(default_uri())
    (champion,) = [m for m in client.search_registered_models("name LIKE 'variants.%'") if "champion" in m.aliases]
    version = client.get_model_version_by_alias(champion.name, "champion")
    assert client.get_run(version.run_id).data.tags["cfexp.role"] == "final"
    assert version.tags["dataset.digest"] == ratings.digest


def test_another_split_is_another_experiment_and_an_edited_file_is_refused(small, capsys):
    assert main(["sweep", str(small), "--quiet"]) == 0
    assert main(["sweep", str(small), "--quiet", "--set", "data.val_pct=0.2"]) == 0
    found = studies()
    assert {n.split("/")[0] for n in found} == {"small", f"small-{_key(found, 'small-')}"}
    assert {s.user_attrs["cfexp.data"]["val_pct"] for s in found.values()} == {0.1, 0.2}
    capsys.readouterr()
    before = (small.parents[1] / "mlruns" / "optuna-journal.log").read_bytes()
    small.write_text(small.read_text().replace("val_pct = 0.1", "val_pct = 0.15"))
    assert main(["sweep", str(small), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "val_pct 0.1 → 0.15" in err[0] and "Traceback" not in err[0]
    assert (small.parents[1] / "mlruns" / "optuna-journal.log").read_bytes() == before  # nothing written
    assert main(["report", str(small)]) == 2  # nor reported
    assert main(["evaluate", str(small), "--quiet"]) == 2  # nor evaluated


def _key(found: dict, prefix: str) -> str:
    return next(n.split("/")[0][len(prefix) :] for n in found if n.startswith(prefix))


def test_no_test_row_reaches_a_trial_pruner_or_sampler(small, small_dir, monkeypatch):
    calls = []  # every call of a trainer: (train pairs, validation pairs)

    def recording(trainer):
        def fit(model, train, val, recipe, callbacks=()):
            calls.append([set(zip(p.users.tolist(), p.movies.tolist(), strict=True)) for p in (train, val)])
            return trainer(model, train, val, recipe, callbacks)

        return fit

    for name, variant in list(REGISTRY.items()):
        trainer = replace(variant.trainer, fit=recording(variant.trainer.fit))
        monkeypatch.setitem(REGISTRY, name, replace(variant, trainer=trainer))
    handed = []  # what every trial's fit was handed: the data, and so what Optuna's values and reports come from
    fit_run = runner.fit_run
    monkeypatch.setattr(runner, "fit_run", lambda run, d, *a, **k: handed.append(d) or fit_run(run, d, *a, **k))
    assert main(["sweep", str(small), "--quiet"]) == 0

    ratings = data.load_ratings(str(small_dir))
    split = data.split_rows(len(ratings.frame), 0.1, 0.2, 42)
    codes = ratings.frame[["user", "movie"]].to_numpy()
    test = {tuple(pair) for pair in codes[split.test].tolist()}
    fit_rows = {tuple(pair) for pair in codes[split.refit_rows()].tolist()}
    found = studies().values()
    trials = sum(len(s.trials) for s in found)
    assert len(handed) == trials and len(calls) == trials + len(found)  # every trial, and each study's final fit
    for d in handed:
        assert d.test is None and len(d.train) + len(d.val) == len(fit_rows)
        for part in (d.train, d.val, d.ranking.relevant[1]):
            assert len(part)
        pairs = set(zip(d.train.users.tolist(), d.train.movies.tolist(), strict=True))
        pairs |= set(zip(d.val.users.tolist(), d.val.movies.tolist(), strict=True))
        assert not pairs & test
    for train, val in calls:
        assert not (train | val) & test
    finals = [train for train, val in calls if not val]
    assert len(finals) == len(found) and all(train == fit_rows for train in finals)  # on train + validation only


def test_studies_draw_their_own_points_and_a_rerun_draws_the_same(small, workdir):
    assert main(["sweep", str(small), "--quiet"]) == 0
    first = studies()
    a, b = (first[f"small/{n}"].trials for n in ("a", "b"))
    assert a[0].params != b[0].params  # same space, same sweep seed: different first points
    assert samplers.study_seed(42, "small/a") != samplers.study_seed(42, "small/b")
    (workdir / "mlruns").rename(workdir / "first-mlruns")
    assert main(["sweep", str(small), "--quiet"]) == 0
    again = studies()
    for name in ("small/a", "small/b"):
        assert [t.params for t in again[name].trials] == [t.params for t in first[name].trials]


def test_model_based_sampling_runs_within_the_default_budget(small):
    from cfexp.config.experiment import load_experiment
    from cfexp.search.space import search_space, suggest

    experiment = load_experiment(small)
    budget = experiment.sweep.trials
    assert experiment.sweep.sampler == DEFAULT_SAMPLER
    assert samplers.startup_trials(budget) < budget
    assert main(["sweep", str(small), "--quiet"]) == 0
    spec = next(s for s in experiment.sweep.studies if s.name == "a")
    study = studies()["small/a"]
    phases = [t.user_attrs[samplers.SAMPLED] for t in study.trials]
    assert phases.count("model") >= 1 and phases[0] == "startup"
    # Each trial's sampler is seeded study seed + trial number. A startup trial is that seed's random draw; a model
    # trial is not: the model moved the point.
    seed = samplers.study_seed(42, "small/a")
    for trial, phase in zip(study.trials, phases, strict=True):
        probe = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed + trial.number))
        random_draw = suggest(probe.ask(), search_space(spec))
        assert (random_draw == trial.params) == (phase == "startup"), (trial.number, phase)


def test_the_final_model_is_a_run_of_its_own_and_is_registered(small, small_dir, capsys):
    assert main(["sweep", str(small), "--summary", "s.json"]) == 0
    out = capsys.readouterr().out
    assert "final fits (train + validation, scored once on test)" in out
    client = mlflow.MlflowClient(default_uri())
    experiment = client.get_experiment_by_name("small")
    finals = client.search_runs([experiment.experiment_id], "tags.`cfexp.role` = 'final'")
    assert len(finals) == 3
    for run in finals:
        assert run.info.status == "FINISHED" and "test_ndcg_at_10" in run.data.metrics
        parent = client.get_run(run.data.tags["mlflow.parentRunId"])
        assert parent.data.tags["cfexp.role"] == "study"
        assert parent.data.tags["cfexp.final_run_id"] == run.info.run_id
    versions = {v.name: v for v in client.search_model_versions("name LIKE 'small.%'")}
    assert set(versions) == {"small.a", "small.b", "small.popular"}
    for version in versions.values():
        assert client.get_run(version.run_id).data.tags["cfexp.role"] == "final"
        assert version.description.index("test") < version.description.index("Selected on validation")
    summary = json.loads(Path("s.json").read_text())
    best = summary["best"]
    assert best["study"] in ("small/a", "small/b") and best["final_run_id"] in {r.info.run_id for r in finals}
    rows = {row["study"]: row for row in summary["studies"]}
    assert best["best_val_loss"] == min(rows[s]["best_val_loss"] for s in ("small/a", "small/b"))
    assert np.isfinite(best["test_loss"])


def test_the_report_says_the_protocol_and_puts_test_first(small, workdir):
    assert main(["sweep", str(small), "--quiet"]) == 0
    assert main(["report", str(small)]) == 0
    text = (workdir / "reports" / "small" / "report.md").read_text()
    protocol = text[text.index("## 2. Protocol: the splits") : text.index("## 3.")]
    assert "| train | " in protocol and "| validation | " in protocol and "| test | " in protocol
    assert "![The three splits](splits.png)" in protocol
    optimism = [line for line in protocol.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert len(optimism) == 2  # each rating study: val, test and their gap
    leaderboard = text[text.index("Variant leaderboard") :]
    header = next(line for line in leaderboard.splitlines() if line.startswith("| study"))
    assert header.index("test MSE") < header.index("val MSE")
    ranking = text[text.index("Ranking: top-10") :]
    best = ranking[ranking.index("The ranking-best is **") :].split("**")[1]
    first_row = next(line for line in ranking.splitlines() if line.startswith("| ") and "study" not in line)
    assert first_row.split(" | ")[0] == f"| {best}"  # the sentence names the table's first row


def test_evaluate_leaves_the_test_split_alone_and_bootstraps_the_champions_lead(small, small_dir, capsys):
    from cfexp.evaluation.folds import folds_of

    small.write_text(small.read_text() + EASE)  # a second ranker: the ranking champion's lead over the floor

    ratings = data.load_ratings(str(small_dir))
    split = data.split_rows(len(ratings.frame), 0.1, 0.2, 42)
    for fold in folds_of(split.refit_rows(), 3, 42):
        assert not set(fold.train) & set(split.test) and not set(fold.val) & set(split.test)
    assert main(["sweep", str(small), "--quiet"]) == 0
    assert main(["evaluate", str(small), "--folds", "3", "--summary", "e.json"]) == 0
    out = capsys.readouterr().out
    assert "on 3 folds of train + validation" in out and "bootstrap interval over" in out
    summary = json.loads(Path("e.json").read_text())
    lead = summary["test_lead"]
    assert {lead["champion"], lead["runner_up"]} == {"a", "b"} and lead["low"] <= lead["lead"] <= lead["high"]
    assert 0 < lead["p"] <= 1 and "paired permutation test p = " in out
    ranking = summary["test_ranking_lead"]  # the ranking champion against the top-N floor, by NDCG on test
    assert {ranking["champion"], ranking["runner_up"]} == {"popular", "ease"} and ranking["metric"] == "NDCG@10"
    assert ranking["low"] <= ranking["lead"] <= ranking["high"] and 0 < ranking["p"] <= 1
    assert f"{ranking['runner_up']} by {ranking['lead']:.4f} NDCG@10" in out
    rows = {row["study"]: row for row in json.loads(Path("e.json").read_text())["folds"]}
    assert set(rows) == {"a", "b", "popular", "ease"}
    assert main(["evaluate", str(small), "--folds", "2", "--nested", "--quiet", "--summary", "n.json"]) == 0
    nested = json.loads(Path("n.json").read_text())
    assert nested["nested"] is True and len(nested["folds"]) == 8


def test_a_kill_during_a_final_fit_leaves_it_to_the_next_sweep(tmp_path):
    import time

    from reliability_helpers import finish, interrupt, mlflow_runs, start_sweep, study, write_experiment

    path = write_experiment(tmp_path, epochs=30, trials=2)
    path.write_text(
        path.read_text().replace('ratings = "ml-latest-small"', 'ratings = "ml-latest-small"\ntest_pct = 0.2')
    )
    first = start_sweep(tmp_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read()
        try:
            claim = study(tmp_path, "rel/sig").user_attrs.get("cfexp.final", {})
        except (KeyError, FileNotFoundError):
            claim = {}
        if claim.get("state") == "RUNNING":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("no final fit started in time")
    interrupt(first, signal.SIGKILL)
    code, err = finish(start_sweep(tmp_path))
    assert code == 0, err
    runs = mlflow_runs(tmp_path)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    finals = [r for r in runs if r.data.tags.get("cfexp.role") == "final" and r.data.tags["optuna.study"] == "rel/sig"]
    killed = [r for r in finals if r.info.status == "KILLED"]
    done = [r for r in finals if r.info.status == "FINISHED"]
    assert len(killed) <= 1 and len(done) == 1  # the kill may land before the final run was created
    if killed:
        assert "final fit" in killed[0].data.tags["cfexp.fail_reason"]
    record = study(tmp_path, "rel/sig").user_attrs["cfexp.final"]
    assert record["state"] == "COMPLETE" and record["run_id"] == done[0].info.run_id
    assert record["trial"] == study(tmp_path, "rel/sig").best_trial.number
