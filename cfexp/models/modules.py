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
    # One whose raw score is u·m over the first table's columns, plus both rows' next column (its bias) where
    # `bias_columns` is set, may also define link(raw) -> (score, link'(raw) or None): a CPU trainer then computes
    # raw and the Jacobian inside its fused loops and never gathers the partners at all (cfexp.fit.lazy_kernels).


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

    bias_columns = False

    def link(self, raw: torch.Tensor) -> tuple[torch.Tensor, None]:
        return raw, None


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
        return *self.link(res), partners

    bias_columns = True

    def link(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The score from the raw u·m + biases, and its slope (None without a y_range: the identity)."""
        if self.y_range is None:
            return raw, None
        s = torch.sigmoid(raw)
        slope = torch.addcmul(s, s, s, value=-1).mul_(self.range_width)
        return torch.addcmul(self.range_low, s, self.range_width), slope


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


def __getattr__(name: str):
    """The Bayesian machines live in cfexp.models.bayesian; models pickled before they moved name them here (looked
    up on first use: that module imports this one)."""
    if name in ("BayesianMF", "BayesianSVDpp"):
        from cfexp.models import bayesian

        return getattr(bayesian, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
