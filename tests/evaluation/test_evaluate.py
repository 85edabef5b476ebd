"""`cfexp evaluate`: seeded folds of each study's best configuration, intervals and paired tests, in MLflow."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cfexp.cli.main import main
from cfexp.evaluation.folds import folds_of
from cfexp.metrics import stats as evaluation_stats
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

SMALL = """
name = "small"
description = "folds"

[data]
ratings = "{ratings}"

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[3, 0.5]]
n_factors = 8
device = "cpu"
restore_best = true

[eval]
folds = 3

[sweep]
trials = 2

[sweep.space]
lr = {{ low = 0.1, high = 1.0, log = true }}
weight_decay = false

[[sweep.variants]]
name = "bias"
variant = "bias"

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@10"
trials = 1
"""


@pytest.fixture()
def small(workdir, small_dir):
    path = workdir / "experiments" / "small.toml"
    path.write_text(SMALL.format(ratings=small_dir))
    return path


def test_folds_are_seeded_disjoint_and_cover_every_rating():
    folds = folds_of(1000, 5, seed=42)
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, folds_of(1000, 5, seed=42), strict=True))
    assert not np.array_equal(folds[0].val, folds_of(1000, 5, seed=7)[0].val)
    assert np.array_equal(np.sort(np.concatenate([f.val for f in folds])), np.arange(1000))
    for fold in folds:
        assert len(np.intersect1d(fold.train, fold.val)) == 0 and len(fold.train) + len(fold.val) == 1000


def test_intervals_and_tests_are_scipys():
    rng = np.random.default_rng(0)
    a = 0.80 + rng.normal(0, 0.005, 5)
    b = a + 0.01 + rng.normal(0, 0.002, 5)
    folds = pd.DataFrame(
        [{"study": "a", "fold": i, "mse": v} for i, v in enumerate(a)]
        + [{"study": "b", "fold": i, "mse": v} for i, v in enumerate(b)]
    )
    table = evaluation_stats.summarise(folds, "mse")
    assert list(table.study) == ["a", "b"]  # lower MSE first
    low, high = stats.t.interval(0.95, 4, loc=a.mean(), scale=stats.sem(a))
    assert table.iloc[0][["mean", "sd", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [a.mean(), a.std(ddof=1), low, high]
    )
    (comparison,) = evaluation_stats.compare_with_best(folds, "mse")
    assert comparison.lead == pytest.approx((b - a).mean())
    # Nadeau and Bengio's corrected resampled t-test: the variance grows by (1/K + 1/(K-1)) / (1/K)
    d = b - a
    t = d.mean() / np.sqrt((1 / 5 + 1 / 4) * d.var(ddof=1))
    assert comparison.t_p == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert stats.ttest_rel(a, b).pvalue < comparison.t_p < 0.05  # more careful than the plain test, and can reject
    assert np.isnan(comparison.wilcoxon_p)  # at 5 folds it can never reach 0.05: not shown
    assert stats.wilcoxon(d).pvalue == pytest.approx(evaluation_stats.wilcoxon_floor(5))
    assert "0.0625" in evaluation_stats.wilcoxon_note(5) and evaluation_stats.wilcoxon_note(6) is None
    assert comparison.sentence().startswith(f"a beats b by {d.mean():.4f} ± ")
    half = stats.t.ppf(0.975, 4) * np.sqrt((1 / 5 + 1 / 4) * d.var(ddof=1))  # the interval the test inverts
    assert (comparison.low, comparison.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert comparison.low > 0 and f"95% interval [{comparison.low:.4f}, {comparison.high:.4f}]" in comparison.sentence()
    assert "corrected paired t-test" in comparison.sentence() and "5 folds" in comparison.sentence()
    # a ranking metric: higher is better
    ranked = folds.assign(ndcg_at_10=folds.mse)
    assert list(evaluation_stats.summarise(ranked, "ndcg_at_10").study) == ["b", "a"]


def test_evaluate_retrains_each_best_on_the_folds_and_the_report_shows_it(small, capsys):
    assert main(["evaluate", str(small), "--quiet"]) == 2  # nothing swept yet
    assert "run cfexp sweep" in capsys.readouterr().err
    assert main(["sweep", str(small), "--quiet"]) == 0
    assert main(["evaluate", str(small), "--summary", "first.json"]) == 0
    out = capsys.readouterr().out
    assert "MSE on 3 folds of train + validation" in out and "ndcg@10 on 3 folds" in out
    assert "corrected paired t-test" in out and "Wilcoxon's signed-rank test is not shown" in out
    assert main(["evaluate", str(small), "--quiet", "--summary", "second.json"]) == 0
    first, second = (json.loads((small.parents[1] / f).read_text())["folds"] for f in ("first.json", "second.json"))
    assert first == second  # seeded folds and seeded training: the same numbers again
    assert len(first) == 9 and {row["study"] for row in first} == {"bias", "sig", "popular"}
    assert all(row["mse"] is None for row in first if row["study"] == "popular")

    mlflow.set_tracking_uri(default_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("small")
    parents = client.search_runs([experiment.experiment_id], "tags.`cfexp.role` = 'evaluate'")
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted((c.data.tags["cfexp.study"], c.data.tags["cfexp.fold"]) for c in children) == sorted(
        (s, str(f)) for s in ("bias", "sig", "popular") for f in range(3)
    )
    for child in children:
        assert child.info.status == "FINISHED" and "ndcg_at_10" in child.data.metrics
        assert child.data.params["restore_best"] == "False"  # no epoch picked on the fold's own validation set
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "evaluation")}
    assert "evaluation/folds.csv" in artifacts

    assert main(["report", str(small)]) == 0
    text = (small.parents[1] / "reports" / "small" / "report.md").read_text()
    assert "Repeated evaluation" in text and "95% interval" in text
    bias = np.mean([row["mse"] for row in first if row["study"] == "bias"])
    assert f"{bias:.4f} ± " in text
    assert "In a sentence: " in text and "3 folds" in text
