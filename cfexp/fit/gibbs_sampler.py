"""The Gibbs sampler of a Bayesian factorization machine whose feature groups are chosen per model: users and
movies always (that alone is BPMF, Salakhutdinov & Mnih 2008), and any of `implicit` (each user's set of train movies:
SVD++), `flipped` (each movie's set of train users) and `time` (the time bin of a rating), after Rendle, Zhang and
Koren (2019). A rating is predicted as

    μ + b_u + b_i + b_t + E_u·F_i + E_u·T_t + F_i·T_t,

where E_u = w_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j (the implicit part only with `implicit`), F_i = v_i + |N(i)|^-½
Σ_{u ∈ N(i)} z_u (only with `flipped`), and T_t with b_t are the time bin's factors and bias (only with `time`).

A row is a group's factors with its bias last. Each categorical group's rows are drawn from their Gaussian
conditional in one batched Cholesky solve, with Normal-Wishart hyperparameters; a set part's rows (cfexp.fit.sets)
are coupled and drawn as one block. Without `time`, a side sees the other side's rows per partner, so that every
sum over a row's ratings is one sparse product with a rows × partners matrix; with `time` each rating's partner
differs (the other side's row plus its time bin's), and the sums run over rows × ratings matrices instead.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from cfexp.data.ratings import TensorPart
from cfexp.fit import sparse
from cfexp.fit.gibbs_blocks import draw_rows, hyperparameters
from cfexp.fit.sets import SetPart
from cfexp.fit.sparse import Layout


class Side:
    """One side of the rating matrix (users or movies) as sparse rows × partners matrices, built once per fit.

    Every sum a sweep needs over a row's ratings is a sparse-dense product with these, so that no step gathers
    or scatters per rating."""

    def __init__(self, layout: Layout, partners: torch.Tensor, centred: torch.Tensor):
        shape = layout.shape
        self.pattern = layout.matrix()  # which partners each row rated
        self.ratings = layout.matrix(centred)  # what it rated them (centred on the train mean)
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

    def noise_products(self, partner_rows: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Σ ε p over each row's partners p (factors only), for one noise value ε per rating."""
        pattern = self.pattern
        noisy = torch.sparse_csr_tensor(
            pattern.crow_indices(), pattern.col_indices(), noise, pattern.shape, check_invariants=False
        )
        return noisy @ partner_rows[:, :-1]


class RatingSide:
    """One group's rows against a partner that differs rating by rating: the sums over a row's ratings as products
    with a sparse rows × ratings matrix."""

    def __init__(self, layout: Layout):
        self.pattern = layout.matrix()

    def conditional(self, partners: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Each row's Σ p pᵀ and Σ t p over its ratings, for each rating's partner p (factors, then 1 for the bias)
        and target t; and Σ t²."""
        n, dim = self.pattern.shape[0], partners.shape[1]
        upper, symmetric = _upper_triangle(dim, partners.device)
        pairs = partners.index_select(1, upper[0]).mul_(partners.index_select(1, upper[1]))
        gram = (self.pattern @ pairs).index_select(1, symmetric).view(n, dim, dim)
        products = self.pattern @ (partners * targets[:, None])
        return gram, products, float(targets.double().square().sum())

    def noise_products(self, partners: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.pattern @ (partners[:, :-1] * noise[:, None])


@functools.cache
def _upper_triangle(dim: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The (row, col) indices of a dim × dim upper triangle, and for each full-matrix cell its triangle index."""
    upper = torch.triu_indices(dim, dim, device=device)
    position = torch.empty(dim, dim, dtype=torch.long, device=device)
    position[upper[0], upper[1]] = position[upper[1], upper[0]] = torch.arange(upper.shape[1], device=device)
    return upper, position.flatten()


def with_unit_bias(rows: torch.Tensor) -> torch.Tensor:
    """The rows as a partner sees them: factors, and 1 where the bias sits (the partner's own bias multiplies it)."""
    partner = rows.clone()
    partner[:, -1] = 1.0
    return partner


def predict(user_rows: torch.Tensor, movie_rows: torch.Tensor, users: torch.Tensor, movies: torch.Tensor):
    u, m = user_rows[users], movie_rows[movies]
    return torch.linalg.vecdot(u[:, :-1], m[:, :-1]) + u[:, -1] + m[:, -1]


class Sampler:
    """Gibbs sweeps of the model's feature groups over the training ratings, from the given starting rows. Users
    are drawn first (then their implicit part), movies next (then their flipped part), the time bins last."""

    def __init__(
        self,
        train: TensorPart,
        centred: torch.Tensor,
        user_rows: torch.Tensor,
        movie_rows: torch.Tensor,
        seed: int,
        features: tuple[str, ...] = (),
        bins: tuple[torch.Tensor, int] | None = None,
    ):
        n_users, n_movies = len(user_rows), len(movie_rows)
        self.generator = torch.Generator(device=centred.device).manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.train, self.centred = train, centred
        self.user_rows, self.movie_rows = user_rows, movie_rows  # the effective rows, which predict
        self.user_base, self.movie_base = user_rows, movie_rows  # less their set parts
        factors = user_rows.shape[1] - 1
        self.implicit = self.flipped = None
        by_user = sparse.ratings_layout(train, False, (n_users, n_movies))
        by_movie = sparse.ratings_layout(train, True, (n_movies, n_users))
        if "implicit" in features:
            self.implicit = SetPart(by_user, by_movie, train.users, factors)
        if "flipped" in features:
            self.flipped = SetPart(by_movie, by_user, train.movies, factors)
        self.bins, self.time_rows = None, None
        if bins is None:
            self.users = Side(by_user, train.movies, centred)
            self.movies = Side(by_movie, train.users, centred)
        else:
            self.bins, n_bins = bins
            self.users = RatingSide(_by_rating(train, "users", train.users, n_users))
            self.movies = RatingSide(_by_rating(train, "movies", train.movies, n_movies))
            self.times = RatingSide(_by_rating(train, ("bins", n_bins), self.bins, n_bins))
            self.time_rows = torch.zeros(n_bins, factors + 1, device=centred.device)  # as the biases: from 0
        self.sse = math.nan

    def sweep(self, noise_precision: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One draw of every group: the effective user and movie rows, and the training SSE after the sweep."""
        self.user_base, self.user_rows = self._draw_side(self.users, self.user_base, self.implicit, noise_precision)
        self.movie_base, self.movie_rows = self._draw_side(
            self.movies, self.movie_base, self.flipped, noise_precision, last=self.bins is None
        )
        if self.bins is not None:
            prior = hyperparameters(self.time_rows, self.rng)
            gram, products, squares = self._rating_conditional(self.times)
            self.time_rows = draw_rows(gram, products, prior, noise_precision, self.generator)
            self.sse = _sse(gram, products, squares, self.time_rows)
        elif self.flipped is not None:  # the movies' rows moved after their conditional: count the errors anew
            predicted = self.predict(self.train.users, self.train.movies)
            self.sse = float((self.centred - predicted).double().square().sum())
        return self.user_rows, self.movie_rows, self.sse

    def _draw_side(self, side, base: torch.Tensor, part: SetPart | None, noise_precision: float, last=False):
        """(base, effective) rows of one side: the effective rows from their conditional, with the prior mean
        moved by the set part (E = w + shift, w ~ N(μ, Λ)), then the set part given them."""
        prior = hyperparameters(base, self.rng)
        if self.bins is None:
            partner_rows = self.movie_rows if side is self.users else self.user_rows
            gram, products, squares = side.conditional(partner_rows)
            noise_products = functools.partial(side.noise_products, partner_rows)
        else:
            gram, products, squares = self._rating_conditional(side)
            noise_products = functools.partial(side.noise_products, self._partners(side)[0])
        shift = None if part is None else part.shift()
        rows = draw_rows(gram, products, prior, noise_precision, self.generator, prior_shift=shift)
        if last:
            self.sse = _sse(gram, products, squares, rows)
        if part is None:
            return rows, rows
        base = rows - shift
        part.draw(gram, products, base, noise_products, noise_precision, self.generator, self.rng)
        return base, base + part.shift()

    def _partners(self, side) -> tuple[torch.Tensor, torch.Tensor]:
        """Each rating's partner for `side` (the other two groups' rows summed, with 1 for the bias) and target
        (the centred rating less the partners' biases and their own product)."""
        groups = {self.users: (self.train.users, self.user_rows), self.movies: (self.train.movies, self.movie_rows)}
        groups[self.times] = (self.bins, self.time_rows)
        (a_index, a_rows), (b_index, b_rows) = (groups[g] for g in groups if g is not side)
        a, b = a_rows[a_index], b_rows[b_index]
        targets = self.centred - a[:, -1] - b[:, -1] - torch.linalg.vecdot(a[:, :-1], b[:, :-1])
        partners = a.add_(b)
        partners[:, -1] = 1.0
        return partners, targets

    def _rating_conditional(self, side: RatingSide):
        return side.conditional(*self._partners(side))

    def rows(self) -> tuple[torch.Tensor, ...]:
        """What predicts now: the effective user and movie rows, and the time bins' rows with `time`."""
        if self.time_rows is None:
            return self.user_rows, self.movie_rows
        return self.user_rows, self.movie_rows, self.time_rows

    def predict(self, users: torch.Tensor, movies: torch.Tensor, bins: torch.Tensor | None = None) -> torch.Tensor:
        """The current draw's centred predictions of (user, movie[, time bin]) rows."""
        predicted = predict(self.user_rows, self.movie_rows, users, movies)
        if self.time_rows is not None:
            predicted += time_part(self.user_rows[users], self.movie_rows[movies], self.time_rows[bins])
        return predicted


def _by_rating(train: TensorPart, name, rows: torch.Tensor, n_rows: int) -> Layout:
    """A group's rows × ratings layout, kept on the train part (the time bins' too: they are train quantiles)."""
    return sparse.kept(train, ("by rating", name), lambda: sparse.by_row(rows, n_rows))


def time_part(u: torch.Tensor, m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What a rating's time bin adds: its bias, and its factors' products with the user's and the movie's."""
    return torch.linalg.vecdot(t[:, :-1], u[:, :-1] + m[:, :-1]) + t[:, -1]


def _sse(gram: torch.Tensor, products: torch.Tensor, squares: float, rows: torch.Tensor) -> float:
    """Σ (t − x·p)² over the ratings of the group just drawn = Σ t² − 2 x·Σ t p + xᵀ (Σ p pᵀ) x."""
    per_row = torch.bmm(gram, rows[:, :, None])[:, :, 0].sub_(products, alpha=2.0)
    return squares + float(torch.linalg.vecdot(rows, per_row).double().sum())
