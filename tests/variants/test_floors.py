"""The models that set the bar: EASE's closed form, iALS's alternating solves, Bayesian SVD++'s draws, and EASE's
refusal of a catalogue that does not fit."""

import functools
import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as data
from cfexp.data.ratings import TensorPart
from cfexp.fit import common as fitting
from cfexp.fit import ease, gibbs_sampler
from cfexp.metrics.ranking import Protocol
from cfexp.models.bayesian import BayesianSVDpp
from cfexp.variants import registry as models
from cfexp.variants import runner

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)


def part(users, movies, ratings) -> TensorPart:
    return TensorPart(torch.tensor(users), torch.tensor(movies), torch.tensor(ratings, dtype=torch.float32))


def test_ease_is_the_closed_form_worked_by_hand():
    """Two users: u0 chose movies 0 and 1, u1 movie 0; λ = 1. XᵀX + I = [[3, 1], [1, 2]], P = [[2, -1], [-1, 3]] / 5,
    so B₀₁ = -P₀₁/P₁₁ = 1/3 and B₁₀ = -P₁₀/P₀₀ = 1/2: u1's score for movie 1 is 1/3."""
    x = torch.sparse_coo_tensor(torch.tensor([[0, 0, 1], [0, 1, 0]]), torch.ones(3), (2, 2), check_invariants=False)
    x = x.coalesce()
    expected = torch.tensor([[0.0, 1 / 3], [1 / 2, 0.0]])
    for solve in (ease.solve_primal, ease.solve_dual):  # the movies × movies system, and Woodbury's users × users
        weights, wide = solve(x, 1.0)
        torch.testing.assert_close(weights, expected)
        assert not wide  # float32 holds here
    model = models.build_model("ease", 2, 3, options={"l2": 1.0, "positives": 4.0})
    train = part([0, 0, 1, 1], [0, 1, 0, 2], [5.0, 4.0, 4.5, 2.0])  # u1's 2.0 for movie 2 is not a positive
    result = ease.fit(model, train, train, fitting.Recipe(device="cpu"))
    assert result.status == "completed" and result.history[0]["positives"] == 3
    scores = model.score_matrix(torch.tensor([1]), torch.tensor([0, 1, 2]))
    assert scores[0, 1].item() == pytest.approx(1 / 3, abs=1e-6)
    assert scores[0, 0].item() == 0.0  # a movie never recommends itself
    assert scores[0, 2].item() == 0.0  # rated, but by no one as a positive: nothing points to it


def test_ease_max_items_keeps_the_most_rated_movies():
    model = models.build_model("ease", 3, 4, options={"l2": 10.0, "max_items": 2})
    train = part([0, 1, 2, 0, 1, 2, 0], [3, 3, 3, 1, 1, 0, 2], [4.0] * 7)
    ease.fit(model, train, train, fitting.Recipe(device="cpu"))
    assert model.kept.tolist() == [1, 3] and model.weights.shape == (2, 2)
    scores = model.score_matrix(torch.tensor([0, 1, 2]), torch.arange(4))
    assert torch.isinf(scores[:, [0, 2]]).all() and torch.isfinite(scores[:, [1, 3]]).all()


HUGE = """
name = "huge"

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[sweep]
trials = 1

[[sweep.variants]]
name = "ease"
variant = "ease"
objective = "ndcg@10"
{options}
"""


def test_ease_refuses_a_catalogue_that_does_not_fit_and_runs_with_max_items(workdir):
    """300,000 movies need 360 GB for B: one line naming the need, exit 2, no store written; max_items runs it."""
    n = 300_000
    frame = {"userId": np.arange(n) % 40 + 1, "movieId": np.arange(n) + 1, "rating": 3.0 + np.arange(n) % 5 * 0.5}
    import pandas as pd

    pd.DataFrame(frame).to_csv(workdir / "wide.csv", index=False)
    toml = workdir / "experiments" / "huge.toml"
    toml.write_text(HUGE.format(ratings=workdir / "wide.csv", options=""))
    proc = subprocess.run(
        [sys.executable, "-m", "cfexp.cli", "sweep", str(toml), "--quiet"], capture_output=True, text=True, cwd=workdir
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "ease needs" in proc.stderr and "GB" in proc.stderr and "max_items" in proc.stderr
    assert not any(p.is_file() for p in (workdir / "mlruns").rglob("*")) if (workdir / "mlruns").exists() else True
    toml.write_text(HUGE.format(ratings=workdir / "wide.csv", options="options = { max_items = 2000 }"))
    proc = subprocess.run(
        [sys.executable, "-m", "cfexp.cli", "sweep", str(toml), "--quiet"], capture_output=True, text=True, cwd=workdir
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def lesson_split(ratings):
    split = data.split_rows(len(ratings.frame), 0.1, 0.2, 42)
    return runner.to_device(ratings, split.search(), "cpu", Protocol())


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_ials_loss_decreases_and_every_epoch_is_ranked(lesson_split, solver):
    options = {"alpha": 2.0, "reg": 1e-3, "positives": 4.0, "solver": solver}
    run = RunConfig(name="i", variant="ials", n_factors=16, options=options, phases=((6, 1.0),), restore_best=True)
    _, result = runner.fit_run(runner.resolved(run, lesson_split), lesson_split)
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 6 and all(np.isfinite(losses))
    if solver == "cholesky":  # exact alternating minimisation never raises the objective
        assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(losses)), losses
    assert losses[-1] < 0.9 * losses[0]
    assert all("ndcg_at_10" in h for h in result.history)  # each epoch is an MLflow step with its NDCG@10
    best = max(range(6), key=lambda e: result.history[e]["ndcg_at_10"])
    assert result.best_epoch == best and result.ranking["ndcg_at_10"] > 0.1  # popular reaches 0.079 here


def test_bsvdpp_keeps_its_draws_after_burn_in_and_predicts_their_average(lesson_split):
    run = RunConfig(
        name="b", variant="bsvdpp", n_factors=6, init="normal(0, 0.3)", y_range=(0.5, 5.0),
        options={"burn_in": 2, "noise_precision": 1.6}, phases=((6, 1.0),),
    )  # fmt: skip
    model, result = runner.fit_run(runner.resolved(run, lesson_split), lesson_split)
    assert isinstance(model, BayesianSVDpp)
    assert [h["draws"] for h in result.history] == [0, 0, 1, 2, 3, 4]
    assert model.u.weight.shape[1] == 4 * 6  # the four kept draws' effective user rows, side by side
    val = lesson_split.val
    with torch.no_grad():
        mse = float((model(val.users, val.movies) - val.ratings).square().mean())
    assert mse == pytest.approx(result.history[-1]["val_loss"], rel=1e-4)


def test_the_implicit_factors_are_drawn_from_their_exact_conditional():
    """Perturb-and-solve on three users and four movies: the draws' mean and covariance are Q⁻¹b and Q⁻¹, with Q
    and b written out densely from the model's definition."""
    train = part([0, 0, 1, 1, 1, 2, 2], [0, 1, 1, 2, 3, 0, 3], [1.0, -0.5, 0.3, 0.8, -1.2, 0.4, 0.9])
    f, alpha = 2, 2.0
    generator = torch.Generator().manual_seed(0)
    users, movies = torch.randn(3, f + 1, generator=generator), torch.randn(4, f + 1, generator=generator)
    sampler = gibbs_sampler.Sampler(train, train.ratings, users, movies, seed=1, features=("implicit",))
    mean, precision = np.array([0.2, -0.1]), np.array([[2.0, 0.3], [0.3, 1.5]])
    sampler.implicit.prior = lambda rng: (mean, precision)
    gram, products, _ = sampler.users.conditional(sampler.movie_rows)
    noise = functools.partial(sampler.users.noise_products, sampler.movie_rows)

    q, b = np.kron(np.eye(4), precision), np.tile(precision @ mean, 4)
    v, w = movies[:, :f].double().numpy(), users.double().numpy()
    for u in range(3):
        rated = train.movies[train.users == u].numpy()
        t = train.ratings[train.users == u].double().numpy()
        s_u = v[rated].T @ v[rated]
        indicator = np.zeros(4)
        indicator[rated] = 1.0
        q += alpha / len(rated) * np.kron(np.outer(indicator, indicator), s_u)
        residual = t - movies[rated, f].double().numpy() - w[u, f] - v[rated] @ w[u, :f]
        b += alpha / np.sqrt(len(rated)) * np.kron(indicator, v[rated].T @ residual)
    covariance = np.linalg.inv(q)

    def draw() -> np.ndarray:
        part = sampler.implicit.draw(gram, products, users, noise, alpha, sampler.generator, sampler.rng)
        return part.double().numpy().ravel()

    draws = np.stack([draw() for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(0), covariance @ b, atol=0.05)
    np.testing.assert_allclose(np.cov(draws.T), covariance, atol=0.03)


def test_ials_fused_loop_equals_the_sparse_products(small_ratings_for_ials):
    """iALS's CG on the CPU runs as numba's row-by-row loop; on a GPU as sparse products (cfexp.fit.ials's torch
    path). Run here on the CPU, both take the same steps from the same rows and reach the same solution and loss."""
    from cfexp.fit import ials

    ratings, tensors = small_ratings_for_ials
    torch.manual_seed(0)
    model = models.build_model(
        "ials", ratings.n_users, ratings.n_movies, n_factors=8, init="normal(0, 0.1)", options={"positives": 4.0}
    )
    users, _ = ials._sides(tensors.train, model)
    u, m = model.u.weight.detach(), model.m.weight.detach()
    assert users.fused
    fused = u.clone()
    users.solve(model, fused, m)
    users.fused = False
    products = u.clone()
    users.solve(model, products, m)
    torch.testing.assert_close(fused, products, rtol=1e-4, atol=1e-5)
    fused_loss = users.loss(fused, m)
    users.fused = True
    assert users.loss(fused, m) == pytest.approx(fused_loss, rel=1e-5)


@pytest.fixture(scope="module")
def small_ratings_for_ials():
    ratings = data.load_ratings()
    return ratings, runner.to_device(ratings, data.split_rows(len(ratings.frame)), "cpu")
