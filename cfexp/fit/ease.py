"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): a movie × movie weight matrix in closed form.

B = I − P·diag(1/diag P) with P = (XᵀX + λI)⁻¹, where X is the users × movies matrix of training positives; a
user's score for a movie is their row of X times that movie's column of B (B's diagonal is zero, so a movie never
recommends itself). P comes from a Cholesky factorization of the movies × movies system, or, with fewer users than
movies, of the users × users one through Woodbury's identity; float32 where it holds, float64 where it does not.
Memory grows as movies²: the fit refuses, before anything is written, a catalogue that does not fit the device,
and `max_items` keeps only the most-rated movies (the others are never recommended), as the paper does for large
catalogues. It ranks only: it predicts no ratings.

The same factorization fits the denoising linear autoencoders of Steck (2020, "Autoencoders that don't overfit
towards the identity"): with input dropout p, the penalty λI becomes Λ = p/(1−p)·diag(XᵀX) + λI, and
P = (XᵀX + Λ)⁻¹. DLAE is B = I − PΛ (no constraint on the diagonal); EDLAE keeps EASE's zero diagonal,
B = I − P·diag(1/diag P). At p = 0 with the zero diagonal both are EASE, by the same code.

X may be graded: with `near_weight` w > 0, a rating within one star below the `positives` threshold enters X (and a
user's scoring row) as w instead of 0, the rest as 1. The closed forms hold for any X; at w = 0, X is binary.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from cfexp.data.implicit import Positives, check_threshold, free_bytes, gigabytes
from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError
from cfexp.fit.common import FitResult, Recipe, notify, one_epoch_fit

SOLVE_COPIES = 3  # the Gram matrix, its Cholesky factor and the inverse live at once (float32)


class EASE(nn.Module):
    """Scores = the user's positives (a CSR kept with the model) times B, over the kept movies; -inf elsewhere."""

    def __init__(
        self,
        n_users: int,
        n_movies: int,
        l2: float,
        positives: float,
        max_items: int,
        dropout: float = 0.0,
        zero_diagonal: bool = True,
        near_weight: float = 0.0,
    ):
        super().__init__()
        if not (isinstance(l2, int | float) and 0 < l2 < math.inf):
            raise UserError(f"l2 (EASE's λ) must be a number > 0, got {l2!r}")
        if not (isinstance(dropout, int | float) and not isinstance(dropout, bool) and 0 <= dropout < 1):
            raise UserError(f"dropout (the autoencoder's p) must be in [0, 1), got {dropout!r}")
        if not isinstance(zero_diagonal, bool):
            raise UserError(f"zero_diagonal must be true or false, got {zero_diagonal!r}")
        if not (isinstance(near_weight, int | float) and not isinstance(near_weight, bool) and 0 <= near_weight <= 1):
            raise UserError(f"near_weight must be in [0, 1], got {near_weight!r}")
        self.dropout, self.zero_diagonal, self.near_weight = float(dropout), zero_diagonal, float(near_weight)
        check_threshold(positives)
        if not isinstance(max_items, int) or isinstance(max_items, bool) or max_items < 0:
            raise UserError(f"max_items must be an integer >= 0 (0: every movie), got {max_items!r}")
        self.n_users, self.n_movies = n_users, n_movies
        self.l2, self.positives, self.max_items = float(l2), float(positives), max_items
        self.register_buffer("weights", torch.zeros(0, 0))  # B over the kept movies
        self.register_buffer("kept", torch.zeros(0, dtype=torch.long))  # their movie codes
        self.register_buffer("history_offsets", torch.zeros(n_users + 1, dtype=torch.long))
        self.register_buffer("history", torch.zeros(0, dtype=torch.long))  # each user's positives, as kept columns
        self.register_buffer("history_weights", torch.zeros(0))  # and their weights in X

    @property
    def width(self) -> int:
        """How many movies B spans: the catalogue, or the `max_items` most rated."""
        return min(self.max_items, self.n_movies) if self.max_items else self.n_movies

    @property
    def dual(self) -> bool:
        """Fewer users than movies: solve the users × users system instead (Woodbury), in a fraction of the time."""
        return self.n_users < self.width

    def fit_bytes(self) -> int:
        if self.dual:  # B, X and (λI + XXᵀ)⁻¹X (float64)
            return (self.width**2 + 3 * self.n_users * self.width) * 4
        return SOLVE_COPIES * self.width**2 * 4

    def too_big(self, available: int) -> str:
        """Why the fit cannot run with `available` bytes free, in one line."""
        fitting = int(math.sqrt(available / (SOLVE_COPIES * 4)))
        return (
            f"ease needs {gigabytes(self.fit_bytes())} for its {self.width:,} × {self.width:,} movie matrices "
            f"and {gigabytes(available)} is free: set max_items "
            f"(at most about {fitting:,} fit) to keep only the most-rated movies"
        )

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return torch.full(users.shape, math.nan, device=self.weights.device)

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        """The users' scores for the movies: their positives (a sparse block) times B, then the kept columns."""
        starts, stops = self.history_offsets[users], self.history_offsets[users + 1]
        lengths = stops - starts
        crow = torch.zeros(len(users) + 1, dtype=torch.long, device=users.device)
        crow[1:] = torch.cumsum(lengths, 0)
        within = torch.arange(int(crow[-1]), device=users.device) - torch.repeat_interleave(crow[:-1], lengths)
        at = torch.repeat_interleave(starts, lengths) + within
        columns = self.history[at]
        weights = getattr(self, "history_weights", None)  # a model logged before X could be graded has none
        values = weights[at] if weights is not None and len(weights) else torch.ones(len(at), device=users.device)
        block = torch.sparse_csr_tensor(crow, columns, values, (len(users), len(self.kept)), check_invariants=False)
        kept_scores = block @ self.weights
        scores = torch.full((len(users), self.n_movies), -math.inf, device=users.device)
        scores[:, self.kept] = kept_scores
        return scores[:, movies]

    def weights_of(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """B from the positives X, and whether it took float64; FloatingPointError where no B is sound."""
        solve = solve_dual if self.dual else solve_primal
        return solve(x, self.l2, self.dropout, self.zero_diagonal)

    def set_fitted(self, weights: torch.Tensor, kept: torch.Tensor, positives: Positives, kept_column) -> None:
        self.weights, self.kept = weights.float(), kept
        column = kept_column[positives.movies]
        inside = column >= 0
        users, column = positives.users[inside], column[inside]
        order = torch.argsort(users * len(kept) + column)
        counts = torch.bincount(users, minlength=self.n_users)
        self.history_offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        self.history = column[order]
        self.history_weights = input_weights(self, positives.ratings)[inside][order]

    def input_positives(self, train: TensorPart) -> Positives:
        """The rows that enter X: the positives, and with `near_weight` those within one star below them."""
        graded = self.near_weight > 0 and self.positives > 0
        return Positives.of(train, self.positives - 1.0 if graded else self.positives)


def input_weights(model: EASE, ratings: torch.Tensor) -> torch.Tensor:
    """Each input row's value in X: 1 for a positive, `near_weight` for a rating just below the threshold."""
    near = getattr(model, "near_weight", 0.0)
    if not (near > 0 and model.positives > 0):
        return torch.ones_like(ratings)
    return torch.where(ratings >= model.positives, 1.0, near).to(ratings.dtype)


def positives_matrix(model: EASE, train: TensorPart):
    """X, the users × kept movies matrix of training positives (sparse: ones, or graded), with the kept movies, each
    movie's column in X (-1: not kept) and the positives themselves."""
    device = train.ratings.device
    kept = kept_movies(train, model.n_movies, model.width)
    kept_column = torch.full((model.n_movies,), -1, dtype=torch.long, device=device)
    kept_column[kept] = torch.arange(len(kept), device=device)
    positives = model.input_positives(train)
    inside = kept_column[positives.movies] >= 0
    x = torch.sparse_coo_tensor(
        torch.stack([positives.users[inside], kept_column[positives.movies[inside]]]),
        input_weights(model, positives.ratings[inside]),
        (model.n_users, len(kept)),
        check_invariants=False,
    ).coalesce()
    return x, kept, kept_column, positives


def kept_movies(train: TensorPart, n_movies: int, width: int) -> torch.Tensor:
    """The movies rated in training, at most the `width` rated most often (ties: lower code), in code order."""
    counts = torch.bincount(train.movies, minlength=n_movies)
    order = torch.argsort(-counts, stable=True)[: min(width, int((counts > 0).sum()))]
    return torch.sort(order).values


def _columns_of_b(precision: torch.Tensor) -> torch.Tensor | None:
    """B = I − P·diag(1/diag P) from P (or any positive multiple of it), in place; None where P is not sound."""
    diagonal = precision.diagonal().clone()
    if not (bool(torch.isfinite(precision).all()) and bool((diagonal > 0).all())):
        return None
    weights = precision.div_(-diagonal)  # column j divided by -P_jj
    weights.diagonal().zero_()
    return weights


def penalty(counts: torch.Tensor, l2: float, dropout: float) -> torch.Tensor:
    """Λ's diagonal: p/(1−p)·diag(XᵀX) + λ (λ alone at p = 0)."""
    return counts * (dropout / (1.0 - dropout)) + l2


def _weights_of(precision: torch.Tensor, lam: torch.Tensor, zero_diagonal: bool) -> torch.Tensor | None:
    """B from P = (XᵀX + Λ)⁻¹: EASE's zero-diagonal columns, or DLAE's I − PΛ; None where P is not sound."""
    if zero_diagonal:
        return _columns_of_b(precision)
    if not bool(torch.isfinite(precision).all()):
        return None
    weights = precision.mul_(-lam.to(precision.dtype))  # column j times −Λ_jj
    weights.diagonal().add_(1.0)
    return weights


def solve_primal(x: torch.Tensor, l2: float, dropout: float = 0.0, zero_diagonal: bool = True):
    """B from the movies × movies system (XᵀX + Λ), by Cholesky: float32 where it holds, else float64."""
    gram = torch.sparse.mm(x.t().coalesce(), x).to_dense()  # co-occurrence counts
    lam = penalty(gram.diagonal().clone(), l2, dropout)
    for dtype in (torch.float32, torch.float64):
        g = gram.to(dtype)
        g.diagonal().add_(lam.to(dtype))
        factor, info = torch.linalg.cholesky_ex(g)
        del g
        if int(info) == 0:
            weights = _weights_of(torch.cholesky_inverse(factor), lam, zero_diagonal)
            if weights is not None:
                return weights.float(), dtype == torch.float64
    raise FloatingPointError(f"XᵀX + Λ (λ {l2:g}, p {dropout:g}) is not positive definite even in float64")


def solve_dual(x: torch.Tensor, l2: float, dropout: float = 0.0, zero_diagonal: bool = True):
    """B by Woodbury, for fewer users than movies. With D = Λ⁻¹ and K = I + XDXᵀ (users × users, float64):
    P = D − DXᵀK⁻¹XD. At p = 0, λP = I − Xᵀ(λI + XXᵀ)⁻¹X; DLAE's B = I − PΛ is DXᵀK⁻¹X. The movies × movies
    product is float32 where B comes out sound, else float64."""
    dense = x.to_dense()
    lam = penalty(dense.double().square().sum(0), l2, dropout)  # diag(XᵀX): each movie's count where X is binary
    if dropout == 0:  # EASE's own form (no scaling by D): λI + XXᵀ
        kernel = dense.double() @ dense.T.double()
        kernel.diagonal().add_(l2)
    else:
        kernel = (dense.double() / lam) @ dense.T.double()
        kernel.diagonal().add_(1.0)
    factor, info = torch.linalg.cholesky_ex(kernel)
    if int(info):
        raise FloatingPointError(f"the users × users system (λ {l2:g}, p {dropout:g}) is not positive definite")
    # p = 0: λP = I − Xᵀ(λI + XXᵀ)⁻¹X, one positive multiple of P; else P = D − (DXᵀ)(K⁻¹XD)
    scale = torch.ones(len(lam), dtype=torch.float64) if dropout == 0 else 1.0 / lam
    solved = torch.cholesky_solve(dense.double() * scale, factor)
    for dtype in (torch.float32, torch.float64):
        product = (dense.T.to(dtype) * scale.to(dtype).reshape(-1, 1)) @ solved.to(dtype)
        if not zero_diagonal:  # DLAE: B = I − PΛ, which is the product (times Λ where D is in it)
            weights = product if dropout == 0 else product.mul_(lam.to(dtype))
        else:
            product.neg_().diagonal().add_(scale.to(dtype))
            weights = _columns_of_b(product)
        if weights is not None and bool(torch.isfinite(weights).all()):
            return weights.float(), dtype == torch.float64
    raise FloatingPointError(f"(XᵀX + Λ)⁻¹ (λ {l2:g}, p {dropout:g}) is not sound even in float64")


@torch.no_grad()
def fit(model: EASE, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Fit B in closed form (the model's `weights_of`: EASE's, DLAE's or ItemKNN's), as one epoch (its ranking is
    what the runner's ranking callback adds)."""
    device = train.ratings.device
    model.to(device)
    result = FitResult(status="completed")
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    available = free_bytes(device)
    if model.fit_bytes() > available:  # the memory may have gone since the sweep's checks
        raise UserError(model.too_big(available))
    x, kept, kept_column, positives = positives_matrix(model, train)
    try:
        weights, wide = model.weights_of(x)
    except FloatingPointError as exc:
        result.status, result.reason = "diverged", str(exc)
        weights, wide = torch.zeros(len(kept), len(kept), device=device), False
    del x
    model.set_fitted(weights, kept, positives, kept_column)
    fitted = time.perf_counter()
    metrics = {
        "epoch": 0,
        "train_loss": math.nan,
        "val_loss": math.nan,
        "positives": float(len(positives)),
        "float64": float(wide),
        "seconds": fitted - started,
        "train_seconds": fitted - started,
    }
    return one_epoch_fit(result, metrics, callbacks, started)
