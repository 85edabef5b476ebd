"""The Gibbs conditionals of biased matrix factorization (BPMF, Salakhutdinov & Mnih 2008), and BPMF's sweep.

A row is a user's (or movie's) factors with its bias last. Each side of the rating matrix is kept as sparse
rows × partners matrices, so that every sum a conditional needs over a row's ratings is one sparse-dense product.
Hyperparameters come from their Normal-Wishart posterior; rows from their Gaussian conditionals, all of a side in
one batched Cholesky solve. cfexp.fit.svdpp's sampler adds an implicit part to the same machinery.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

from cfexp.data.ratings import TensorPart

# The products used here are stable. A filter for the whole process, not catch_warnings around the call: that one
# is not thread-safe, and the tracker's thread leaving its own catch_warnings put the old filters back mid-sweep.
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)


class Side:
    """One side of the rating matrix (users or movies) as sparse rows × partners matrices, built once per fit.

    Every sum a sweep needs over a row's ratings is a sparse-dense product with these, so that no step gathers
    or scatters per rating."""

    def __init__(self, rows: torch.Tensor, partners: torch.Tensor, centred: torch.Tensor, shape: tuple[int, int]):
        index = torch.stack([rows, partners])
        self.pattern = csr(index, torch.ones_like(centred), shape)  # which partners each row rated
        self.ratings = csr(index, centred, shape)  # what it rated them (centred on the train mean)
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
        partner = with_unit_bias(partner_rows)
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


def csr(index: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
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


def hyperparameters(rows: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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


def draw_rows(
    gram: torch.Tensor,
    target_products: torch.Tensor,
    prior: tuple[np.ndarray, np.ndarray],
    noise_precision: float,
    generator: torch.Generator,
    prior_shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Every row from its Gaussian conditional: precision Λ + α Σ p pᵀ, mean precision⁻¹ (α Σ t p + Λ μ).
    `prior_shift` moves each row's prior mean μ by its own offset (SVD++'s implicit part)."""
    n, dim = target_products.shape
    device = gram.device
    prior_mean, prior_precision = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in prior)
    precision = torch.add(prior_precision, gram, alpha=noise_precision)
    mean = prior_mean if prior_shift is None else prior_shift + prior_mean
    rhs = torch.add(mean @ prior_precision, target_products, alpha=noise_precision)
    chol, info = torch.linalg.cholesky_ex(precision)
    if bool(info.any()):
        raise FloatingPointError("a row's posterior precision is not positive definite")
    # x = P⁻¹ rhs + L⁻ᵀ z, with P = L Lᵀ: solve L w = rhs, add z, solve Lᵀ x = w + z.
    noise = torch.randn(n, dim, 1, device=device, generator=generator)
    half = torch.linalg.solve_triangular(chol, rhs[:, :, None], upper=False).add_(noise)
    return torch.linalg.solve_triangular(chol.mT, half, upper=True)[:, :, 0]


def with_unit_bias(rows: torch.Tensor) -> torch.Tensor:
    """The rows as a partner sees them: factors, and 1 where the bias sits (the partner's own bias multiplies it)."""
    partner = rows.clone()
    partner[:, -1] = 1.0
    return partner


def predict(user_rows: torch.Tensor, movie_rows: torch.Tensor, users: torch.Tensor, movies: torch.Tensor):
    u, m = user_rows[users], movie_rows[movies]
    return torch.linalg.vecdot(u[:, :-1], m[:, :-1]) + u[:, -1] + m[:, -1]


class Sampler:
    """BPMF's Gibbs sweeps over both sides of the training ratings, from the given starting rows."""

    def __init__(
        self, train: TensorPart, centred: torch.Tensor, user_rows: torch.Tensor, movie_rows: torch.Tensor, seed: int
    ):
        n_users, n_movies = len(user_rows), len(movie_rows)
        self.users = Side(train.users, train.movies, centred, (n_users, n_movies))
        self.movies = Side(train.movies, train.users, centred, (n_movies, n_users))
        self.generator = torch.Generator(device=centred.device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.user_rows, self.movie_rows = user_rows, movie_rows

    def sweep(self, noise_precision: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        """New user rows, then new movie rows: the rows that predict (u · m + biases), and their training SSE."""
        prior = hyperparameters(self.user_rows, self.rng)
        gram, products, _ = self.users.conditional(self.movie_rows)
        self.user_rows = draw_rows(gram, products, prior, noise_precision, self.generator)
        return self.user_rows, *self.draw_movies(self.user_rows, noise_precision)

    def draw_movies(self, partner_rows: torch.Tensor, noise_precision: float) -> tuple[torch.Tensor, float]:
        """New movie rows given the users' rows as the movies see them, and the training SSE of the new pair."""
        prior = hyperparameters(self.movie_rows, self.rng)
        gram, products, squares = self.movies.conditional(partner_rows)
        self.movie_rows = x = draw_rows(gram, products, prior, noise_precision, self.generator)
        # Σ (t - x·p)² over each movie's ratings = Σ t² - 2 x·Σ t p + xᵀ (Σ p pᵀ) x
        per_movie = torch.bmm(gram, x[:, :, None])[:, :, 0].sub_(products, alpha=2.0)
        sse = squares + float(torch.linalg.vecdot(x, per_movie).double().sum())
        return x, sse
