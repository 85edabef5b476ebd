"""The Bayesian factorization machines' fitted form (cfexp.fit.gibbs samples them): the posterior mean of the draws
as biased factor tables, with the time bins' tables where the model has a `time` group."""

from __future__ import annotations

import torch
from torch import nn

from cfexp.models.modules import EmbeddingModel


class BayesianMF(EmbeddingModel):
    """A Bayesian factorization machine averaged over posterior draws (cfexp.fit.gibbs fits it), clipped to y_range.
    With no feature groups beyond users and movies it is BPMF; `features` may add `implicit`, `flipped` and `time`
    (cfexp.fit.gibbs_sampler has the model).

    Before fitting, the tables hold the sampler's starting point; after, the posterior mean: `u` and `m` are the
    kept draws' effective rows (set parts included) side by side, scaled by 1/sqrt(draws), so that u · m is the
    draws' average product; with `time`, `t` holds the time bins' rows alike, and `time_edges` the bins' bounds."""

    user_tables = ("u", "ub")
    movie_tables = ("m", "mb")
    features: tuple[str, ...] = ()  # the class's default, for the models logged before there were feature groups

    def __init__(
        self, n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin=1, features=(), bins=1
    ):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors)
        self.m = nn.Embedding(n_movies, n_factors)
        self.ub = nn.Embedding(n_users, 1)
        self.mb = nn.Embedding(n_movies, 1)
        self.register_buffer("offset", torch.zeros(()))
        self.y_range = tuple(y_range)
        self.noise_precision, self.learn_noise = float(noise_precision), bool(learn_noise)
        self.burn_in, self.thin = burn_in, thin
        self.features = tuple(features)
        if self.takes_times:
            self.t = nn.Embedding(bins, n_factors)
            self.tb = nn.Embedding(bins, 1)
            self.register_buffer("time_edges", torch.zeros(bins - 1, dtype=torch.float64))

    @property
    def takes_times(self) -> bool:
        """Whether a rating's time changes its prediction (else `times` are ignored)."""
        return "time" in self.features

    def set_posterior(self, user_factors, user_bias, movie_factors, movie_bias, offset: float, time=None) -> None:
        self.u = nn.Embedding.from_pretrained(user_factors, freeze=False)
        self.m = nn.Embedding.from_pretrained(movie_factors, freeze=False)
        self.ub = nn.Embedding.from_pretrained(user_bias, freeze=False)
        self.mb = nn.Embedding.from_pretrained(movie_bias, freeze=False)
        if time is not None:
            self.t = nn.Embedding.from_pretrained(time[0], freeze=False)
            self.tb = nn.Embedding.from_pretrained(time[1], freeze=False)
        self.offset.fill_(offset)

    def bins_of(self, times: torch.Tensor | None, n: int) -> torch.Tensor:
        """Each time's bin; with no times, the last bin (the model's present, where it ranks)."""
        if times is None:
            return torch.full((n,), len(self.time_edges), dtype=torch.long, device=self.offset.device)
        return torch.bucketize(times.to(self.time_edges), self.time_edges, right=True)

    def forward(self, users: torch.Tensor, movies: torch.Tensor, times: torch.Tensor | None = None) -> torch.Tensor:
        u = torch.cat([self.u(users), self.ub(users)], 1)
        m = torch.cat([self.m(movies), self.mb(movies)], 1)
        if not self.takes_times:
            return self.score(u, m)
        bins = self.bins_of(times, len(users))
        t, tb = self.t(bins), self.tb(bins)[:, 0]
        f = t.shape[1]
        res = self.score(u, m, clamp=False) + torch.linalg.vecdot(t, u[:, :f] + m[:, :f]) + tb
        return res.clamp_(*self.y_range)

    def score(self, u: torch.Tensor, m: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        f = u.shape[1] - 1
        res = torch.linalg.vecdot(u[:, :f], m[:, :f]) + u[:, f] + m[:, f] + self.offset
        return res.clamp_(*self.y_range) if clamp else res

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        movie_rows, movie_bias = self.m(movies), self.mb(movies).T
        if self.takes_times:  # at the last bin: u·(m + t) + m·t + b_t, a biased dot product
            now = self.bins_of(None, 1)
            t = self.t(now)[0]
            movie_bias = movie_bias + (movie_rows @ t)[None] + self.tb(now)[0]
            movie_rows = movie_rows + t
        res = torch.addmm(movie_bias, self.u(users), movie_rows.T).add_(self.ub(users) + self.offset)
        return res.clamp_(*self.y_range)


class BayesianSVDpp(BayesianMF):
    """Bayesian SVD++: the factorization machine with the `implicit` group. Fitted, its user rows hold each user's
    factors plus their implicit part (|N(u)|^-½ Σ y over the user's training movies)."""

    features = ("implicit",)

    def __init__(self, n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin=1):
        args = (n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)
        super().__init__(*args, features=("implicit",))
