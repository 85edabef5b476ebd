"""bfm, the Bayesian factorization machine over chosen feature groups: its two classic configurations are bpmf and
bsvdpp draw for draw, its set parts only ever hold the rows a fit is given, and its time group rates each rating at
its own time, through evaluate, the logged predictor and the paired test's frames alike."""

import numpy as np
import pytest
import torch

from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as data
from cfexp.errors import UserError
from cfexp.evaluation.holdout import per_user_errors
from cfexp.fit import common as fitting
from cfexp.fit import gibbs, sets
from cfexp.metrics.ranking import Protocol
from cfexp.serve.predictor import predictor_for
from cfexp.serve.pyfunc import Recommender
from cfexp.variants import refit, runner
from cfexp.variants import registry as models

SAMPLER = {"noise_precision": 1.6, "burn_in": 2}


@pytest.fixture(scope="module")
def split(ratings):
    return data.split_rows(len(ratings.frame), 0.1, 0.2, 42)


@pytest.fixture(scope="module")
def lesson_split(ratings, split):
    return runner.to_device(ratings, split.search(), "cpu", Protocol())


def fit(tensors, variant: str, sweeps: int = 8, **options):
    run = RunConfig(
        name=variant, variant=variant, n_factors=6, init="normal(0, 0.3)", y_range=(0.5, 5.0),
        options={**SAMPLER, **options}, phases=((sweeps, 1.0),),
    )  # fmt: skip
    return runner.fit_run(runner.resolved(run, tensors), tensors)


@pytest.mark.parametrize(("classic", "features"), [("bpmf", []), ("bsvdpp", ["implicit"])])
def test_bpmf_and_bsvdpp_are_configurations_of_bfm(lesson_split, classic, features):
    classic_model, classic_result = fit(lesson_split, classic)
    model, result = fit(lesson_split, "bfm", features=features)
    assert [h["val_loss"] for h in result.history] == [h["val_loss"] for h in classic_result.history]
    val = lesson_split.val
    with torch.no_grad():
        assert torch.equal(model(val.users, val.movies), classic_model(val.users, val.movies))


def test_each_feature_group_changes_the_model_and_the_fitted_model_predicts_what_the_sampler_scored(lesson_split):
    losses = {}
    for features in ([], ["flipped"], ["time"], ["implicit", "flipped", "time"]):
        model, result = fit(lesson_split, "bfm", features=features)
        losses[tuple(features)] = result.history[-1]["val_loss"]
        assert fitting.evaluate(model, lesson_split.val)["mse"] == pytest.approx(losses[tuple(features)], rel=1e-5)
    assert len(set(losses.values())) == len(losses)


def test_no_test_row_ever_feeds_a_set_part(ratings, split, monkeypatch):
    """The final fit (train + validation) of bfm with both set parts: every set is built from exactly the rows it
    was given, and not one test row."""
    built = []
    real_init = sets.SetPart.__init__

    def recording(self, by_owner, by_member, owners, factors):
        owner_of = torch.repeat_interleave(torch.arange(by_owner.shape[0]), by_owner.offsets.diff())
        built.append(set(zip(owner_of.tolist(), by_owner.columns.tolist(), strict=True)))
        real_init(self, by_owner, by_member, owners, factors)

    monkeypatch.setattr(sets.SetPart, "__init__", recording)
    holdout = refit.holdout_for(ratings, split, "cpu", Protocol())
    run = RunConfig(
        name="bfm", variant="bfm", n_factors=4, init="normal(0, 0.3)", y_range=(0.5, 5.0),
        options={**SAMPLER, "features": ["implicit", "flipped"]}, phases=((3, 1.0),),
    )  # fmt: skip
    refit.fit_final(run, holdout, 3)
    given, test = pairs_of(ratings, split.refit_rows()), pairs_of(ratings, split.test)
    implicit, flipped = built
    assert implicit == given and {(u, m) for m, u in flipped} == given
    assert not implicit & test and not {(u, m) for m, u in flipped} & test


def pairs_of(ratings, rows) -> set[tuple[int, int]]:
    frame = ratings.frame.iloc[rows]
    return set(zip(frame.user.tolist(), frame.movie.tolist(), strict=True))


def test_the_time_group_rates_each_rating_at_its_own_time(ratings, lesson_split):
    model, _ = fit(lesson_split, "bfm", features=["time"], time_bins=8)
    val = lesson_split.val
    edges = model.time_edges
    assert len(edges) == 7 and bool((edges[1:] >= edges[:-1]).all())
    with torch.no_grad():
        at_their_times = model(val.users, val.movies, val.times)
        at_the_latest = model(val.users, val.movies)
        early = model(val.users, val.movies, torch.full_like(val.times, int(edges[0]) - 1))
    assert not torch.equal(at_their_times, at_the_latest) and not torch.equal(at_their_times, early)
    assert fitting.evaluate(model, val)["mse"] == pytest.approx(float((at_their_times - val.ratings).square().mean()))

    # the logged model: a timestamp column rates at each row's time, and without one at the latest
    recommender = Recommender(predictor_for(model, ratings))
    frame = ratings.frame.iloc[:200]
    pairs = frame[["userId", "movieId", "timestamp"]]
    with torch.no_grad():
        expected = model(
            torch.as_tensor(frame.user.to_numpy()), torch.as_tensor(frame.movie.to_numpy()),
            torch.as_tensor(frame.timestamp.to_numpy()),
        ).numpy()  # fmt: skip
        np.testing.assert_allclose(recommender.predict_ratings(pairs), expected, rtol=1e-6)
        latest = recommender.predict_ratings(frame[["userId", "movieId"]])
    assert not np.allclose(latest, expected)
    errors = per_user_errors(recommender.predict_ratings, ratings.held_out(np.arange(200)))
    assert errors["sum"].sum() == pytest.approx(float(((expected - frame.rating.to_numpy()) ** 2).sum()), rel=1e-5)


def test_the_time_group_without_timestamps_is_refused_in_words(lesson_split):
    train = lesson_split.train
    bare = data.TensorPart(train.users, train.movies, train.ratings)
    model = models.build_model("bfm", 700, 10000, n_factors=4, init="normal(0, 0.3)", y_range=(0.5, 5.0))
    with pytest.raises(UserError, match="needs timestamps"):
        gibbs.fit(model, bare, bare, fitting.Recipe(phases=((2, 1.0),), device="cpu"))


@pytest.mark.parametrize(
    ("options", "message"),
    [({"features": ["season"]}, "feature groups out of implicit, flipped, time"), ({"time_bins": 0}, "time_bins")],
)
def test_impossible_options_are_refused(options, message):
    with pytest.raises(UserError, match=message):
        models.build_model("bfm", 3, 3, n_factors=2, init="normal(0, 0.3)", y_range=(0.5, 5.0), options=options)
