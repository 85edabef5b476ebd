"""Bayesian matrix factorization (BPMF, Salakhutdinov & Mnih 2008) with biases, fitted by block Gibbs sampling.

Each "epoch" is one Gibbs sweep: Normal-Wishart hyperparameters for each side, then every user's row (factors
and bias) from its Gaussian conditional in one batched Cholesky solve, then every movie's. After `burn_in`
sweeps every `thin`-th draw is kept; the prediction is the average of the kept draws' predictions. That average is
itself a biased dot product over the concatenated draws (scaled by 1/sqrt(draws)), which is what the fitted model
holds, so the predictor, the model logger and the report read it like any other biased factorization.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from cfexp.data import TensorPart
from cfexp.fitting import FitResult, Recipe, StopTraining, notify

# The products used here are stable. A filter for the whole process, not catch_warnings around the call: that one
# is not thread-safe, and the tracker's thread leaving its own catch_warnings put the old filters back mid-sweep.
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)

NOISE_PRIOR = (1.0, 1.0)  # Gamma(shape, rate) prior on the noise precision when it is learned


class _Side:
    """One side of the rating matrix (users or movies) as sparse rows × partners matrices, built once per fit.

    Every sum a sweep needs over a row's ratings is a sparse-dense product with these, so that no step gathers
    or scatters per rating."""

    def __init__(self, rows: torch.Tensor, partners: torch.Tensor, centred: torch.Tensor, shape: tuple[int, int]):
        index = torch.stack([rows, partners])
        self.pattern = _csr(index, torch.ones_like(centred), shape)  # which partners each row rated
        self.ratings = _csr(index, centred, shape)  # what it rated them (centred on the train mean)
        # per partner: the sum of its centred ratings and their count (for the squared error)
        self.partner_sums = torch.zeros(shape[1], device=centred.device).index_add_(0, partners, centred)
        self.partner_counts = torch.bincount(partners, minlength=shape[1]).to(centred.dtype)
        self.square_sum = float(centred.double().square().sum())

    def conditional(self, partner_rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Each row's Gram matrix Σ p pᵀ and Σ t p over the partners p it rated, where t is the rating less the
        partner's bias and p the partner's factors with 1 for its bias; and Σ t² over all ratings."""
        n, dim = self.pattern.shape[0], partner_rows.shape[1]
        upper, symmetric = _upper_triangle(dim, partner_rows.device)  # the Gram is symmetric: sum half of it
        bias = partner_rows[:, -1:]
        partner = _with_unit_bias(partner_rows)
        pairs = partner.index_select(1, upper[0]).mul_(partner.index_select(1, upper[1]))
        summed = self.pattern @ torch.cat([pairs, bias * partner], 1)
        gram = summed[:, : upper.shape[1]].index_select(1, symmetric).view(n, dim, dim)
        target_products = (self.ratings @ partner).sub_(summed[:, upper.shape[1] :])
        bias = bias[:, 0].double()
        target_squares = self.square_sum - 2 * float(bias @ self.partner_sums.double())
        target_squares += float(bias.square() @ self.partner_counts.double())
        return gram, target_products, target_squares


@functools.cache
def _upper_triangle(dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (row, col) indices of a dim × dim upper triangle, and for each full-matrix cell its triangle index."""
    upper = torch.triu_indices(dim, dim, device=device)
    position = torch.empty(dim, dim, dtype=torch.long, device=device)
    position[upper[0], upper[1]] = position[upper[1], upper[0]] = torch.arange(upper.shape[1], device=device)
    return upper, position.flatten()


def _csr(index: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    coo = torch.sparse_coo_tensor(index, values, shape, check_invariants=False)
    return coo.coalesce().to_sparse_csr()


def _wishart(df: float, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Wishart(df, scale) draw by Bartlett's decomposition. (torch's Wishart imports sympy on first use,
    which alone costs more than a whole short fit.)"""
    dim = len(scale)
    bartlett = np.tril(rng.standard_normal((dim, dim)), -1)
    bartlett[np.diag_indices(dim)] = np.sqrt(rng.chisquare(df - np.arange(dim)))
    factor = np.linalg.cholesky(scale) @ bartlett
    return factor @ factor.T


def _hyperparameters(rows: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean, precision) of the rows' Gaussian prior, drawn from its Normal-Wishart posterior.

    The hyperprior is BPMF's: mean 0 with beta0 = 2, Wishart with dim degrees of freedom and identity scale."""
    n, dim = rows.shape
    x = rows.double()
    mean = x.mean(0)
    centred = x - mean
    scatter, mean = (centred.T @ centred).cpu().numpy(), mean.cpu().numpy()
    beta0, nu0 = 2.0, dim
    beta_n, nu_n = beta0 + n, nu0 + n
    scale_inv = np.eye(dim) + scatter + (beta0 * n / beta_n) * np.outer(mean, mean)
    scale = np.linalg.inv(scale_inv)
    precision = _wishart(nu_n, (scale + scale.T) / 2, rng)
    chol = np.linalg.cholesky(beta_n * precision)
    draw = n * mean / beta_n + np.linalg.solve(chol.T, rng.standard_normal(dim))
    return draw, precision


def _draw_rows(
    gram: torch.Tensor,
    target_products: torch.Tensor,
    prior: tuple[np.ndarray, np.ndarray],
    noise_precision: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Every row from its Gaussian conditional: precision Λ + α Σ p pᵀ, mean precision⁻¹ (α Σ t p + Λ μ)."""
    n, dim = target_products.shape
    device = gram.device
    prior_mean, prior_precision = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in prior)
    precision = torch.add(prior_precision, gram, alpha=noise_precision)
    rhs = torch.add(prior_precision @ prior_mean, target_products, alpha=noise_precision)
    chol, info = torch.linalg.cholesky_ex(precision)
    if bool(info.any()):
        raise FloatingPointError("a row's posterior precision is not positive definite")
    # x = P⁻¹ rhs + L⁻ᵀ z, with P = L Lᵀ: solve L w = rhs, add z, solve Lᵀ x = w + z.
    noise = torch.randn(n, dim, 1, device=device, generator=generator)
    half = torch.linalg.solve_triangular(chol, rhs[:, :, None], upper=False).add_(noise)
    return torch.linalg.solve_triangular(chol.mT, half, upper=True)[:, :, 0]


class _Sampler:
    """Gibbs sweeps over both sides of the training ratings."""

    def __init__(self, train: TensorPart, centred: torch.Tensor, n_users: int, n_movies: int, seed: int):
        self.users = _Side(train.users, train.movies, centred, (n_users, n_movies))
        self.movies = _Side(train.movies, train.users, centred, (n_movies, n_users))
        self.generator = torch.Generator(device=centred.device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)

    def sweep(self, user_rows, movie_rows, noise_precision: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        """New user rows, then new movie rows, and the training squared error of the new pair."""
        prior = _hyperparameters(user_rows, self.rng)
        gram, products, _ = self.users.conditional(movie_rows)
        user_rows = _draw_rows(gram, products, prior, noise_precision, self.generator)
        prior = _hyperparameters(movie_rows, self.rng)
        gram, products, squares = self.movies.conditional(user_rows)
        movie_rows = _draw_rows(gram, products, prior, noise_precision, self.generator)
        # Σ (t - x·p)² over each movie's ratings = Σ t² - 2 x·Σ t p + xᵀ (Σ p pᵀ) x
        x = movie_rows
        per_movie = torch.bmm(gram, x[:, :, None])[:, :, 0].sub_(products, alpha=2.0)
        sse = squares + float(torch.linalg.vecdot(x, per_movie).double().sum())
        return user_rows, movie_rows, sse


def _with_unit_bias(rows: torch.Tensor) -> torch.Tensor:
    """The rows as a partner sees them: factors, and 1 where the bias sits (the partner's own bias multiplies it)."""
    partner = rows.clone()
    partner[:, -1] = 1.0
    return partner


def _predict(user_rows: torch.Tensor, movie_rows: torch.Tensor, users: torch.Tensor, movies: torch.Tensor):
    u, m = user_rows[users], movie_rows[movies]
    return torch.linalg.vecdot(u[:, :-1], m[:, :-1]) + u[:, -1] + m[:, -1]


class _Draws:
    """The kept draws, and the running sum of their validation predictions."""

    def __init__(self, val_size: int, device: torch.device):
        self.users: list[torch.Tensor] = []
        self.movies: list[torch.Tensor] = []
        self.val_sum = torch.zeros(val_size, device=device)

    def __len__(self) -> int:
        return len(self.users)

    def keep(self, user_rows: torch.Tensor, movie_rows: torch.Tensor, val_prediction: torch.Tensor) -> None:
        self.users.append(user_rows.clone())
        self.movies.append(movie_rows.clone())
        self.val_sum += val_prediction

    def truncate(self, count: int) -> None:
        del self.users[count:], self.movies[count:]


class _BestSweep:
    """The sweep with the lowest val loss so far, and what the model was then: its first `draws` kept draws, or
    (in the burn-in, before any was kept) that sweep's own draw."""

    def __init__(self):
        self.epoch: int | None = None
        self.loss = math.inf
        self.draws = 0
        self.rows: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, epoch: int, loss: float, draws: _Draws, user_rows, movie_rows) -> bool:
        """Record the sweep if it is the best so far; True when it was."""
        if not loss < self.loss:
            return False
        self.epoch, self.loss, self.draws = epoch, loss, len(draws)
        self.rows = None if len(draws) else (user_rows.clone(), movie_rows.clone())
        return True

    def restore(self, draws: _Draws) -> None:
        draws.truncate(self.draws)
        if self.rows is not None:
            draws.users, draws.movies = [self.rows[0]], [self.rows[1]]


def _val_scores(prediction: torch.Tensor, val: TensorPart, y_range: tuple[float, float]) -> dict[str, float]:
    if not len(val):
        return {"val_loss": math.nan, "val_rmse": math.nan, "val_mae": math.nan}
    err = prediction.clamp(*y_range) - val.ratings
    mse = float(err.double().square().mean())
    return {"val_loss": mse, "val_rmse": math.sqrt(mse), "val_mae": float(err.double().abs().mean())}


def _posterior_mean_into(model, users: list[torch.Tensor], movies: list[torch.Tensor], offset: float) -> None:
    """Set the model's tables to the average of the draws: a dot product over the draws' factors, side by side."""
    scale = 1.0 / math.sqrt(len(users))
    user_factors = torch.cat([u[:, :-1] for u in users], 1) * scale
    movie_factors = torch.cat([m[:, :-1] for m in movies], 1) * scale
    model.set_posterior(
        user_factors,
        torch.stack([u[:, -1] for u in users]).mean(0, keepdim=True).T,
        movie_factors,
        torch.stack([m[:, -1] for m in movies]).mean(0, keepdim=True).T,
        offset,
    )


def fit(model, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Sample the model's posterior for `recipe.epochs` sweeps, keeping draws after its burn-in."""
    device = train.ratings.device
    model.to(device)
    n_users, n_movies = model.u.num_embeddings, model.m.num_embeddings
    offset = float(train.ratings.mean())
    centred = train.ratings - offset
    sampler = _Sampler(train, centred, n_users, n_movies, recipe.seed)
    rng = sampler.rng
    with torch.no_grad():
        user_rows = torch.cat([model.u.weight, model.ub.weight], 1).float()
        movie_rows = torch.cat([model.m.weight, model.mb.weight], 1).float()
        user_rows[:, -1] = movie_rows[:, -1] = 0.0  # biases start at 0: a random start costs sweeps (measured)
    noise_precision = float(model.noise_precision)
    draws = _Draws(len(val), device)
    best = _BestSweep()
    result = FitResult(status="completed")
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            for epoch in range(recipe.epochs):
                epoch_started = time.perf_counter()
                user_rows, movie_rows, sse = sampler.sweep(user_rows, movie_rows, noise_precision)
                if model.learn_noise:
                    shape, rate = NOISE_PRIOR
                    noise_precision = float(rng.gamma(shape + len(train) / 2, 1.0 / (rate + sse / 2)))
                swept = time.perf_counter()
                prediction = _predict(user_rows, movie_rows, val.users, val.movies)
                if epoch >= model.burn_in and (epoch - model.burn_in) % model.thin == 0:
                    draws.keep(user_rows, movie_rows, prediction)
                if len(draws):  # the model's prediction: the kept draws' average (else, in the burn-in, this draw)
                    prediction = draws.val_sum / len(draws)
                scores = _val_scores(prediction + offset, val, model.y_range)
                mse = scores["val_loss"]
                metrics = {
                    "epoch": epoch,
                    "train_loss": sse / len(train),
                    **scores,
                    "noise_precision": noise_precision,
                    "draws": len(draws),
                    "seconds": time.perf_counter() - epoch_started,
                    "train_seconds": swept - epoch_started,  # the sweep without scoring the validation set
                }
                result.history.append(metrics)
                if not math.isfinite(mse if len(val) else sse):  # a final fit has no validation
                    result.status, result.reason = "diverged", f"loss became {mse} at sweep {epoch}"
                notify(callbacks, "on_epoch_end", epoch, metrics)
                if result.status == "diverged":
                    break
                improved = best.update(epoch, mse, draws, user_rows, movie_rows)
                if not improved and recipe.patience and epoch - best.epoch >= recipe.patience:
                    result.reason = f"early stop at sweep {epoch}: no better val loss since sweep {best.epoch}"
                    break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    except FloatingPointError as exc:
        result.status, result.reason = "diverged", f"{exc} at sweep {len(result.history)}"
    result.best_epoch = best.epoch
    if recipe.restore_best and best.epoch is not None:
        best.restore(draws)
    if not len(draws):  # stopped in the burn-in: the model is the last draw
        draws.users, draws.movies = [user_rows], [movie_rows]
    _posterior_mean_into(model, draws.users, draws.movies, offset)
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result
