"""iALS (Hu, Koren and Volinsky 2008): a user's preference for a movie is u · m, fitted by alternating least squares
to every (user, movie) cell: 1 where the user has a positive, 0 elsewhere, each weighted by its confidence.

Confidence is 1 + α·r for a positive (r its rating, or 1) and 1 for every other cell, as in the paper; the
regularization of a row is λ·(the sum of its confidences)^ν, Rendle et al.'s 2021 frequency scaling (ν = 0 is a
constant λ, as the `implicit` package has it). Each epoch solves every user's row given the movies, then every
movie's given the users: by `cg_steps` of conjugate gradients warm-started from the row's last value (the default,
as `implicit` does), or exactly (`solver = "cholesky"`). The sum over the unobserved cells never materialises: it is
YᵀY, one f × f product per side. The sums over a row's positives go through sparse products of the positives'
confidences with the partner rows, so that nothing of size positives × factors is built. It ranks only.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import torch

from cfexp.data.implicit import Positives, check_threshold
from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError
from cfexp.fit import sparse
from cfexp.fit.common import BestEpoch, FitResult, Recipe, StopTraining, end_ranked_fit, notify, ranked_epoch_end
from cfexp.fit.sparse import Layout
from cfexp.models.modules import EmbeddingDot

SOLVERS = ("cg", "cholesky")


class ImplicitMF(EmbeddingDot):
    """u · m, fitted by iALS: a preference score for ranking, not a rating."""

    def __init__(self, n_users, n_movies, n_factors, alpha, reg, reg_exponent, positives, rated, solver, cg_steps):
        super().__init__(n_users, n_movies, n_factors)
        for name, value in (("alpha", alpha), ("reg", reg)):
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise UserError(f"{name} must be a number >= 0, got {value!r}")
        if not isinstance(reg_exponent, int | float) or not 0 <= reg_exponent <= 1:
            raise UserError(f"reg_exponent (ν) must be in [0, 1], got {reg_exponent!r}")
        check_threshold(positives)
        if solver not in SOLVERS:
            raise UserError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
        if not isinstance(cg_steps, int) or isinstance(cg_steps, bool) or cg_steps < 1:
            raise UserError(f"cg_steps must be an integer >= 1, got {cg_steps!r}")
        self.alpha, self.reg, self.reg_exponent = float(alpha), float(reg), float(reg_exponent)
        self.positives, self.rated, self.solver, self.cg_steps = float(positives), bool(rated), solver, cg_steps


class _Side:
    """One side's positives (rows × partners) in CSR order: their confidences less 1, and each row's λ. On the CPU
    the CG steps run row by row in one fused loop (cfexp.fit.ials_kernels); elsewhere, and for the exact solver,
    through sparse products of the confidences with the partner rows."""

    def __init__(self, layout: Layout, ratings: torch.Tensor, model: ImplicitMF):
        """`ratings` are the positives' ratings in the layout's order."""
        strength = ratings if model.rated else torch.ones_like(ratings)
        self.layout = layout
        self.extra_values = model.alpha * strength  # c − 1 on a positive
        n_partners = layout.shape[1]
        weight = torch.segment_reduce(self.extra_values, "sum", offsets=layout.offsets, axis=0, unsafe=True)
        self.reg = model.reg * (weight + n_partners).pow(model.reg_exponent)  # λ (Σ over all cells of c)^ν
        self.fused = ratings.device.type == "cpu" and model.solver == "cg"

    @functools.cached_property
    def extra(self) -> torch.Tensor:  # Σ (c − 1) p pᵀ and the sampled products
        return self.layout.placed(self.extra_values)

    @functools.cached_property
    def confidence(self) -> torch.Tensor:  # Σ c p: the right-hand sides
        return self.layout.placed(self.extra_values + 1.0)

    @functools.cached_property
    def pattern(self) -> torch.Tensor:
        return self.layout.placed(torch.ones_like(self.extra_values))

    def times_gram(self, rows: torch.Tensor, partners: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        """A x for every row at once: x·YᵀY + Σ (c − 1)(y · x) y + λ x, for the rows' x."""
        sampled = torch.sparse.sampled_addmm(self.pattern, rows, partners.T, beta=0.0)
        weighted = torch.sparse_csr_tensor(
            sampled.crow_indices(),
            sampled.col_indices(),
            sampled.values() * self.extra.values(),
            sampled.shape,
            check_invariants=False,
        )
        return torch.addmm(weighted @ partners, rows, gram).addcmul_(self.reg[:, None], rows)

    def solve_cg(self, rows: torch.Tensor, partners: torch.Tensor, steps: int) -> torch.Tensor:
        """`steps` of conjugate gradients for every row at once, from their current values."""
        gram = partners.T @ partners
        x = rows.clone()
        residual = (self.confidence @ partners).sub_(self.times_gram(x, partners, gram))
        direction = residual.clone()
        size = residual.square().sum(1)
        for _ in range(steps):
            product = self.times_gram(direction, partners, gram)
            curvature = (direction * product).sum(1)
            step = torch.where(size > 1e-20, size / curvature.clamp_min(1e-30), 0.0)
            x.addcmul_(step[:, None], direction)
            residual.addcmul_(step[:, None], product, value=-1.0)
            new_size = residual.square().sum(1)
            direction = residual.addcmul(torch.where(size > 1e-20, new_size / size, 0.0)[:, None], direction)
            size = new_size
        return x

    def solve_exact(self, partners: torch.Tensor) -> torch.Tensor:
        """Every row's normal equations solved by Cholesky: (YᵀY + Σ (c − 1) y yᵀ + λI) x = Σ c y."""
        n, dim = self.pattern.shape[0], partners.shape[1]
        pairs = (partners[:, :, None] * partners[:, None, :]).view(len(partners), dim * dim)
        grams = (self.extra @ pairs).view(n, dim, dim).add_(partners.T @ partners)
        grams.diagonal(dim1=1, dim2=2).add_(self.reg[:, None])
        rhs = self.confidence @ partners
        return torch.cholesky_solve(rhs[:, :, None], torch.linalg.cholesky(grams))[:, :, 0]

    def solve(self, model: ImplicitMF, rows: torch.Tensor, partners: torch.Tensor) -> None:
        """Every row of `rows` solved given `partners`, in place."""
        if model.solver == "cholesky":
            rows.copy_(self.solve_exact(partners))
        elif self.fused:
            gram = partners.T @ partners
            arrays = (self.layout.offsets, self.layout.columns, self.extra_values, rows, partners, gram, self.reg)
            ials_kernels().solve_cg(*(a.numpy() for a in arrays), model.cg_steps)
        else:
            rows.copy_(self.solve_cg(rows, partners, model.cg_steps))

    def loss(self, rows: torch.Tensor, partners: torch.Tensor) -> float:
        """The iALS objective: Σ over every cell of c (p − x·y)², plus each row's λ‖x‖² (this side's rows only)."""
        everything = float(((rows.T @ rows) * (partners.T @ partners)).sum())  # Σ over all cells of (x·y)²
        if self.fused:
            arrays = (self.layout.offsets, self.layout.columns, self.extra_values, rows, partners)
            positives = ials_kernels().positive_terms(*(a.numpy() for a in arrays))
        else:
            predicted = torch.sparse.sampled_addmm(self.pattern, rows, partners.T, beta=0.0).values()
            confidence = self.confidence.values()
            positives = float((confidence * (1 - predicted).square() - predicted.square()).sum())
        return everything + positives + float((self.reg * rows.square().sum(1)).sum())


def ials_kernels():
    """The numba loops, imported on first use (numba's import and, once per machine, its compile take seconds)."""
    from cfexp.fit import ials_kernels as kernels

    return kernels


def _sides(train: TensorPart, model: ImplicitMF) -> tuple[_Side, _Side]:
    """The users' and the movies' sides. Their layouts, with the positives' ratings in each one's order, are kept
    on `train` for the next trial (the positives themselves are not: only what the sides read stays)."""
    threshold = model.positives
    shapes = {False: (model.u.num_embeddings, model.m.num_embeddings)}
    shapes[True] = shapes[False][::-1]
    # the fused loop reads a row's positives in any order; sparse products take them by column
    fused = train.users.device.type == "cpu" and model.solver == "cg"

    def build() -> dict[bool, tuple[Layout, torch.Tensor]]:
        positives = Positives.of(train, threshold)
        built = {}
        for by_movie, shape in shapes.items():
            rows, cols = (positives.movies, positives.users) if by_movie else (positives.users, positives.movies)
            if fused:
                layout, ratings = sparse.grouped(rows, cols, positives.ratings, shape)
            else:
                layout = sparse.layout(rows, cols, shape)
                ratings = positives.ratings[layout.order]
            built[by_movie] = (replace(layout, order=None), ratings)
        return built

    kept = sparse.kept(train, ("positives layouts", threshold, shapes[False], fused), build)
    return _Side(*kept[False], model), _Side(*kept[True], model)


def fit(model: ImplicitMF, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """`recipe.epochs` ALS epochs; each epoch's ranking (added by the runner's callback) picks the best one."""
    device = train.ratings.device
    model.to(device).train()
    users, movies = _sides(train, model)
    n_positives = len(users.extra_values)
    result = FitResult(status="completed")
    best = BestEpoch(keep_weights=recipe.restore_best, higher_is_better=True)
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            for epoch in range(recipe.epochs):
                epoch_started = time.perf_counter()
                u, m = model.u.weight, model.m.weight
                users.solve(model, u, m)
                movies.solve(model, m, u)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)  # the epoch's time, not its launch's
                swept = time.perf_counter()
                loss = (users.loss(u, m) + float((movies.reg * m.square().sum(1)).sum())) / max(n_positives, 1)
                metrics = {
                    "epoch": epoch,
                    "train_loss": loss,
                    "val_loss": math.nan,
                    "seconds": time.perf_counter() - epoch_started,
                    "train_seconds": swept - epoch_started,
                }
                if ranked_epoch_end(result, best, metrics, model, callbacks, recipe.patience):
                    break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    return end_ranked_fit(result, best, model, callbacks, started)
