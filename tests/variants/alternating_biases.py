"""A variant defined outside cfexp, as a user would write one (docs/adding-a-variant.md): the global mean plus user
and movie biases, fitted by alternating damped means, one alternation an epoch, each epoch reporting how far the
movie biases spread (its own per-epoch metric, logged and shown because the trainer declares it)."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from cfexp.fit.common import FitResult, Recipe, StopTraining, evaluate, notify
from cfexp.variants import Param, Trainer, register


class AlternatingBiases(nn.Module):
    def __init__(self, n_users: int, n_movies: int, damping: float):
        super().__init__()
        self.damping = damping
        self.mean = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.ub, self.mb = nn.Embedding(n_users, 1), nn.Embedding(n_movies, 1)

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.mean + self.ub(users).squeeze(-1) + self.mb(movies).squeeze(-1)


def _damped_means(index, offsets, size, damping):
    sums = torch.zeros(size, dtype=offsets.dtype).index_add_(0, index, offsets)
    return sums / (torch.bincount(index, minlength=size).to(offsets.dtype) + damping)


@torch.no_grad()
def fit(model, train, val, recipe: Recipe, callbacks=()) -> FitResult:
    result, started = FitResult(status="completed"), time.perf_counter()
    notify(callbacks, "on_fit_start", model, recipe)
    model.mean.fill_(train.ratings.float().mean())
    for epoch in range(recipe.epochs):
        user_part = model.ub.weight[train.users, 0]
        offsets = train.ratings - model.mean - user_part
        model.mb.weight[:, 0] = _damped_means(train.movies, offsets, model.mb.num_embeddings, model.damping)
        offsets = train.ratings - model.mean - model.mb.weight[train.movies, 0]
        model.ub.weight[:, 0] = _damped_means(train.users, offsets, model.ub.num_embeddings, model.damping)
        scores = evaluate(model, val)
        metrics = {
            "epoch": epoch,
            "train_loss": evaluate(model, train)["mse"],
            "val_loss": scores["mse"],
            "val_rmse": scores["rmse"],
            "val_mae": scores["mae"],
            "movie_bias_sd": float(model.mb.weight.std()),
            "seconds": time.perf_counter() - started,
        }
        result.history.append(metrics)
        try:
            notify(callbacks, "on_epoch_end", epoch, metrics)
        except StopTraining as stop:
            result.status, result.reason = "stopped", str(stop)
            break
    result.best_epoch = len(result.history) - 1 if result.history else None
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result


ALTERNATING = Trainer(
    "alternating",
    fit,
    ignores=frozenset({"lr", "weight_decay", "row_l2", "momentum", "batch_size", "n_factors"}),
    unused=frozenset({"optimizer", "lazy_sgd", "one_cycle", "schedule", "y_range", "init"}),
    epoch_metrics=("movie_bias_sd",),
    settings=lambda params, options: f"{params.get('epochs')} alternations",
)


def _check(damping) -> None:
    if not (isinstance(damping, int | float) and 0 <= damping < math.inf):
        from cfexp.errors import UserError

        raise UserError(f"damping must be a number >= 0, got {damping!r}")


@register(
    "alternating_biases",
    init="constant(0)",
    trainer=ALTERNATING,
    uses_y_range=False,
    epoch_cost=0.05,
    space={"damping": Param("float", 1.0, 30.0, log=True)},
    check=_check,
)
def _alternating_biases(n_users, n_movies, n_factors, y_range, sparse, *, damping=5.0):
    """Global mean plus user and movie biases by alternating damped means (a test's own variant)."""
    return AlternatingBiases(n_users, n_movies, damping)
