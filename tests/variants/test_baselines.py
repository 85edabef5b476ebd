"""The baselines (mean, bias, popular) and BPR: their fits, and how sweeps and runs treat them."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from cfexp.cli.main import main
from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as data
from cfexp.track import default_uri
from cfexp.variants import runner

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)


def lesson(ratings):
    return runner.to_device(ratings, data.split_rows(len(ratings.frame)), "cpu")


def fit(tensors, variant: str, **changes):
    run = runner.resolved(RunConfig(name=variant, variant=variant, **changes), tensors)
    return runner.fit_run(run, tensors)


def test_bias_is_lenskits_damped_means(ratings):
    """The movie bias is the damped mean offset from the global mean; the user bias, from mean + movie bias."""
    tensors = lesson(ratings)
    model, result = fit(tensors, "bias", options={"damping": 5.0})
    frame = ratings.frame.iloc[data.split_rows(len(ratings.frame)).train]
    mean = frame.rating.mean()
    movie = frame.assign(o=frame.rating - mean).groupby("movieId").o.agg(["sum", "count"])
    movie_bias = movie["sum"] / (movie["count"] + 5.0)
    offsets = frame.rating - mean - frame.movieId.map(movie_bias)
    user = offsets.groupby(frame.userId).agg(["sum", "count"])
    user_bias = user["sum"] / (user["count"] + 5.0)
    code = {m: i for i, m in enumerate(ratings.movie_ids)}
    got = model.mb.weight[:, 0].detach().numpy()
    assert np.allclose([got[code[m]] for m in movie_bias.index], movie_bias.to_numpy(), atol=1e-6)
    assert float(model.mean) == pytest.approx(mean)
    assert np.allclose(np.sort(model.ub.weight[:, 0].detach().numpy()), np.sort(user_bias.to_numpy()), atol=1e-6)
    # LensKit 2025.8.1's Bias (damping 5) was measured at 0.7917 on this split (issue 11; make bench checks it)
    assert result.best_val_loss == pytest.approx(0.7917, abs=5e-4)


def test_mean_predicts_the_training_mean_and_lies_below_bias(ratings):
    tensors = lesson(ratings)
    mean_model, mean = fit(tensors, "mean", init="normal(0, 0.1)")  # an experiment's [train] init is ignored
    _, bias = fit(tensors, "bias", init="normal(0, 0.1)")
    assert float(mean_model.mean) == pytest.approx(float(tensors.train.ratings.double().mean()))
    assert not mean_model.ub.weight.any() and not mean_model.mb.weight.any()
    assert bias.best_val_loss == pytest.approx(0.7917, abs=5e-4)
    assert bias.best_val_loss < mean.best_val_loss - 0.2


def test_bpr_ranks_better_than_popularity(ratings):
    """The ranking-trained variant beats `popular` (NDCG@10 0.1476) at its own game, on the same protocol."""
    tensors = lesson(ratings)
    _, popular = fit(tensors, "popular")
    common = dict(n_factors=128, init="normal(0, 0.1)", optimizer="adam", batch_size=4096, row_l2=0.01)
    _, bpr = fit(tensors, "bpr", phases=((16, 0.01),), restore_best=True, **common)
    assert bpr.status == "completed" and 0 <= bpr.best_epoch < 16
    assert bpr.ranking["ndcg_at_10"] > popular.ranking["ndcg_at_10"] + 0.02
    assert bpr.ranking["recall_at_10"] > popular.ranking["recall_at_10"]
    # it was ranked each epoch, to pick its best one
    assert all("ndcg_at_10" in h for h in bpr.history)


RANKED = """
name = "ranked"

[data]
ratings = "{ratings}"

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[3, 0.5]]
n_factors = 8
device = "cpu"

[eval]
k = 5

[sweep]
trials = 3
pruner = "median"
pruner_startup_trials = 1
pruner_warmup_epochs = 0

[sweep.space]
lr = {{ low = 0.1, high = 1.0, log = true }}
weight_decay = false

[[sweep.variants]]
name = "bias"
variant = "bias"

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@5"
trials = 1

[[sweep.variants]]
name = "bpr"
variant = "bpr"
objective = "ndcg@5"
optimizer = "adam"
space.lr = {{ low = 0.002, high = 0.02, log = true }}
"""


@pytest.fixture()
def ranked(workdir, small_dir):
    path = workdir / "experiments" / "ranked.toml"
    path.write_text(RANKED.format(ratings=small_dir))
    return path


def test_a_ranking_study_maximises_its_metric_and_every_run_logs_the_ranking(ranked):
    import optuna

    assert main(["sweep", str(ranked), "--quiet", "--summary", "summary.json"]) == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log"))
    bpr = optuna.load_study(study_name="ranked/bpr", storage=storage)
    assert bpr.direction == optuna.study.StudyDirection.MAXIMIZE
    done = [t for t in bpr.trials if t.state.name == "COMPLETE"]
    assert bpr.best_trial.value == max(t.value for t in done)
    # pruning followed NDCG: each trial reported its per-epoch NDCG@5
    for trial in bpr.trials:
        history = trial.user_attrs["history"]
        assert trial.intermediate_values == {h["epoch"]: h["ndcg_at_5"] for h in history}
    mlflow.set_tracking_uri(default_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("ranked")
    trials = [c for c in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in c.data.tags]
    assert len(trials) == 7
    for child in trials:
        assert {"ndcg_at_5", "recall_at_5", "hr_at_5", "map_at_5", "ranked_users"} <= set(child.data.metrics)
        has_mse = child.data.tags["cfexp.variant"] == "bias"
        assert ("best_val_loss" in child.data.metrics) == has_mse
    parent = client.search_runs(
        [experiment.experiment_id], "tags.`optuna.study` = 'ranked/bpr' and tags.`cfexp.role` = 'study'"
    )
    assert parent[0].data.tags["cfexp.objective"] == "ndcg_at_5"
    assert parent[0].data.metrics["best_value"] == pytest.approx(bpr.best_value)
    summary = json.loads((ranked.parents[1] / "summary.json").read_text())
    rows = {row["study"]: row for row in summary["studies"]}
    assert rows["ranked/popular"]["best_val_loss"] is None and rows["ranked/popular"]["ndcg_at_5"] > 0
    assert rows["ranked/bpr"]["objective"] == "ndcg_at_5"


def test_a_ranking_only_variant_without_a_ranking_objective_is_refused(ranked, capsys):
    ranked.write_text(ranked.read_text().replace('objective = "ndcg@5"\ntrials = 1', "trials = 1"))
    assert main(["sweep", str(ranked), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "popular ranks and predicts no ratings" in err[0] and 'objective = "ndcg@5"' in err[0]
    assert not (ranked.parents[1] / "mlruns" / "mlflow.db").exists()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("k = 5", "k = 0"), "k must be an integer >= 1"),
        (('objective = "ndcg@5"\ntrials', 'objective = "ndcg@10"\ntrials'), "objective must be val_loss or one of"),
        (('objective = "ndcg@5"\ntrials', 'objective = "auc"\ntrials'), "ndcg@5, recall@5, hr@5, map@5"),
        (("k = 5", "k = 5\nfolds = 1"), "folds must be an integer >= 2"),
        (("k = 5", "k = 5\nrelevant = 4"), "relevant"),
    ],
)
def test_bad_eval_settings_get_one_line(ranked, capsys, edit, message):
    ranked.write_text(ranked.read_text().replace(*edit, 1))
    assert main(["sweep", str(ranked), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_changing_a_studys_objective_is_refused(ranked, capsys):
    assert main(["sweep", str(ranked), "--quiet", "--trials", "1"]) == 0
    text = ranked.read_text()
    ranked.write_text(text.replace('objective = "ndcg@5"\noptimizer', 'objective = "recall@5"\noptimizer'))
    assert main(["sweep", str(ranked), "--quiet", "--trials", "1"]) == 2
    assert "tuned ndcg_at_5, and its objective is now recall_at_5" in capsys.readouterr().err


def test_train_prints_and_logs_the_ranking_of_every_run(workdir, small_dir, capsys):
    path = workdir / "experiments" / "two.toml"
    path.write_text(
        f'name = "two"\n[data]\nratings = "{small_dir}"\n[train]\nschedule = [[2, 0.1]]\nn_factors = 4\n'
        '[[runs]]\nname = "bias"\nvariant = "bias"\n[[runs]]\nname = "dot"\nvariant = "dot_bias"\n'
    )
    assert main(["train", str(path)]) == 0
    out = capsys.readouterr().out
    assert "ndcg@10" in out and "ranking of the final model" in out
    mlflow.set_tracking_uri(default_uri())
    runs = mlflow.search_runs(experiment_names=["two"])
    assert runs["metrics.ndcg_at_10"].notna().all() and runs["metrics.map_at_10"].notna().all()
    assert isinstance(pd.Series(runs["metrics.ranked_users"]).iloc[0], float)


def test_workers_sweep_ranking_studies_and_summarise_them(ranked):
    """Two workers: a helper's summary holds a ranking-only run's MSE as null, and the closing summary copes."""
    assert main(["sweep", str(ranked), "--quiet", "--workers", "2", "--summary", "summary.json"]) == 0
    summary = json.loads((ranked.parents[1] / "summary.json").read_text())
    assert summary["workers"] == 2 and summary["best"]["variant"] == "bias"
    assert {row["study"] for row in summary["studies"]} == {"ranked/bias", "ranked/popular", "ranked/bpr"}
    assert any(run["best_val_loss"] is None for run in summary["runs"])  # popular's and bpr's runs
