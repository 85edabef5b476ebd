"""The variants' torch modules: embedding tables for users and movies, and how each scores a (user, movie) pair."""

from __future__ import annotations

import torch
from torch import nn

PAIR_CHUNK = 1 << 24  # (user, movie, hidden unit) activations an MLP's ranking builds at once (64 MB of float32)


def _sigmoid_range(x: torch.Tensor, y_range: tuple[float, float] | None, in_place: bool = False) -> torch.Tensor:
    """x squashed into y_range (x itself without one); `in_place` overwrites x, where x needs no gradient."""
    if y_range is None:
        return x
    low, high = y_range
    if in_place:
        return x.sigmoid_().mul_(high - low).add_(low)
    return torch.sigmoid(x) * (high - low) + low


class EmbeddingModel(nn.Module):
    """A model of user and movie embedding rows: `forward` looks the rows up, `score` turns them into ratings.

    Splitting the two lets a trainer gather rows itself (e.g. for lazily-regularized sparse updates) and reuse
    the variant's own scoring.
    """

    user_tables: tuple[str, ...] = ("u",)
    movie_tables: tuple[str, ...] = ("m",)

    def tables(self) -> tuple[list[nn.Embedding], list[nn.Embedding]]:
        return [getattr(self, n) for n in self.user_tables], [getattr(self, n) for n in self.movie_tables]

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        user_side, movie_side = self.tables()
        u = torch.cat([e(users) for e in user_side], 1) if len(user_side) > 1 else user_side[0](users)
        m = torch.cat([e(movies) for e in movie_side], 1) if len(movie_side) > 1 else movie_side[0](movies)
        return self.score(u, m)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # A variant whose score is link(raw) with raw bilinear in the rows may also define
    # score_jacobian(partners, b, own=None) -> (score, link'(raw) or None, d raw / d [u; m] as (2b, width)), where
    # `partners` holds each example's movie row then its user row ([m; u]: each side's partner) and becomes the
    # Jacobian in place, so that a trainer can skip autograd and gather the rows straight into that layout; `own`
    # ([u; m]), where the trainer has it, spares the variant a copy of what the Jacobian overwrites.


def _rowdot(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Each row's dot product. A large batch takes a batched 1×w by w×1 product: vecdot would first build the
    whole elementwise product (at 65,536 rows, a fresh 34 MB tensor); a small one is faster through vecdot."""
    if len(u) < 4096:
        return torch.linalg.vecdot(u, m)
    return torch.bmm(u.unsqueeze(1), m.unsqueeze(2)).view(-1)


class EmbeddingDot(EmbeddingModel):
    """The lesson's EmbeddingDot: rating = user factors · movie factors."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, sparse: bool = False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (u * m).sum(1)

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Every (user, movie) score of the given users and movies, as one matrix product (for ranking)."""
        return self.u(users) @ self.m(movies).T

    def score_jacobian(self, partners: torch.Tensor, b: int, own: torch.Tensor | None = None):
        m, u = partners[:b], partners[b:]  # d (u · m) / d u = m and d / d m = u: the partners are the Jacobian
        return _rowdot(u, m), None, partners


class EmbeddingDotBias(EmbeddingModel):
    """Dot product plus user and movie biases, optionally squashed by a sigmoid into y_range."""

    user_tables = ("u", "ub")
    movie_tables = ("m", "mb")

    def __init__(self, n_users: int, n_movies: int, n_factors: int, y_range=None, sparse: bool = False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)
        self.ub = nn.Embedding(n_users, 1, sparse=sparse)
        self.mb = nn.Embedding(n_movies, 1, sparse=sparse)
        self.n_factors = n_factors
        self.y_range = tuple(y_range) if y_range is not None else None
        self.register_buffer("bias_column", torch.tensor([n_factors]), persistent=False)
        # y_range as tensors: multiplying by a Python float costs a scalar-to-tensor copy on every small batch
        low, high = self.y_range or (0.0, 1.0)
        self.register_buffer("range_low", torch.tensor(float(low)), persistent=False)
        self.register_buffer("range_width", torch.tensor(float(high - low)), persistent=False)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        f = self.n_factors
        res = (u[:, :f] * m[:, :f]).sum(1) + u[:, f] + m[:, f]
        return _sigmoid_range(res, self.y_range)

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        res = torch.addmm(self.mb(movies).T, self.u(users), self.m(movies).T).add_(self.ub(users))
        return _sigmoid_range(res, self.y_range, in_place=True)  # a ranking block is 16M scores: no second copy

    def score_jacobian(self, partners: torch.Tensor, b: int, own: torch.Tensor | None = None):
        """The scores, their slope through the sigmoid (None without one), and d res / d [u; m] (`partners`, [m; u],
        turned into it in place). `own`, the rows themselves ([u; m]) where the caller has them, saves a copy."""
        if own is None:
            m, u = partners[:b], partners[b:]
            movie_bias = m[:, self.n_factors].clone()
            # d res / d u = [m's factors, 1]: u · that is the factor product plus the user bias; add the movie bias
            m.index_fill_(1, self.bias_column, 1.0)
            res = _rowdot(u, m).add_(movie_bias)
            u.index_fill_(1, self.bias_column, 1.0)  # d res / d m = [u's factors, 1]
        else:
            jac = partners.index_fill_(1, self.bias_column, 1.0)
            res = _rowdot(own[:b], jac[:b]).add_(own[b:, self.n_factors])
        jac = partners
        if self.y_range is None:
            return res, None, jac
        s = torch.sigmoid(res)
        slope = torch.addcmul(s, s, s, value=-1).mul_(self.range_width)
        return torch.addcmul(self.range_low, s, self.range_width), slope, jac


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


class EmbeddingNN(EmbeddingModel):
    """fastai's EmbeddingNN idea: concatenated embeddings → MLP → sigmoid into y_range."""

    def __init__(self, n_users, n_movies, n_factors, y_range, hidden: int, dropout: float, sparse=False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * n_factors, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.y_range = tuple(y_range)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return _sigmoid_range(self.mlp(torch.cat([u, m], 1)).squeeze(1), self.y_range)

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """Every (user, movie) score of the given users and movies, for ranking (in eval mode: no dropout). The first
        layer on [u; m] is W_u u + W_m m + b, so each side is projected once instead of once per pair."""
        first, last = self.mlp[1], self.mlp[4]
        f = self.u.embedding_dim
        user_side = torch.addmm(first.bias, self.u(users), first.weight[:, :f].T)
        movie_side = self.m(movies) @ first.weight[:, f:].T
        chunk = max(1, PAIR_CHUNK // (len(movies) * first.out_features))  # users whose hidden layer fits at once
        scores = torch.empty(len(users), len(movies), device=user_side.device)
        for start in range(0, len(users), chunk):
            hidden = (user_side[start : start + chunk, None, :] + movie_side[None]).relu_()
            scores[start : start + chunk] = hidden @ last.weight[0] + last.bias
        return _sigmoid_range(scores, self.y_range, in_place=True)


class BiasModel(nn.Module):
    """The global mean plus a user and a movie bias (all biases zero: the global mean alone). Fitted in closed form
    (cfexp.fit.baselines), as LensKit's Bias and Surprise's BaselineOnly are."""

    def __init__(self, n_users: int, n_movies: int, damping: float | None):
        super().__init__()
        self.ub = nn.Embedding(n_users, 1)
        self.mb = nn.Embedding(n_movies, 1)
        nn.init.zeros_(self.ub.weight)
        nn.init.zeros_(self.mb.weight)
        self.register_buffer("mean", torch.zeros(()))
        self.damping = damping  # None: no biases (the `mean` variant)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.ub(users)[:, 0] + self.mb(movies)[:, 0] + self.mean

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.ub(users) + self.mb(movies).T + self.mean


class Popularity(nn.Module):
    """Ranks movies by how often they were rated in training; it predicts no ratings (NaN)."""

    def __init__(self, n_movies: int):
        super().__init__()
        self.register_buffer("counts", torch.zeros(n_movies))

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return torch.full(users.shape, float("nan"), device=self.counts.device)

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.counts[movies].expand(len(users), -1)


class EmbeddingBPR(EmbeddingModel):
    """A user's preference for a movie, u · m + the movie's bias: trained to rank (BPR), not to rate."""

    user_tables = ("u",)
    movie_tables = ("m", "mb")

    def __init__(self, n_users: int, n_movies: int, n_factors: int):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors)
        self.m = nn.Embedding(n_movies, n_factors)
        self.mb = nn.Embedding(n_movies, 1)
        nn.init.zeros_(self.mb.weight)
        self.n_factors = n_factors

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vecdot(u, m[:, : self.n_factors]) + m[:, self.n_factors]

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.mb(movies).T, self.u(users), self.m(movies).T)
