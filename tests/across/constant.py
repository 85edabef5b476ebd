"""A variant outside cfexp that predicts one rating for every pair (its `level`): the test data make one level win
in one setting and the other in another, so that a conclusion flips across settings."""

from __future__ import annotations

import torch
from torch import nn

from cfexp.fit.common import FitResult, evaluate, notify, one_epoch_fit
from cfexp.variants import Trainer, register


class Constant(nn.Module):
    def __init__(self, n_users: int, n_movies: int, level: float):
        super().__init__()
        self.level = nn.Parameter(torch.tensor(float(level)), requires_grad=False)
        self.n_movies = n_movies

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.level.expand(len(users))

    def score_matrix(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        return self.level.expand(len(users), len(movies))


@torch.no_grad()
def fit(model, train, val, recipe, callbacks=()) -> FitResult:
    import time

    started = time.perf_counter()
    notify(callbacks, "on_fit_start", model, recipe)
    scores = evaluate(model, val)
    metrics = {"epoch": 0, "train_loss": evaluate(model, train)["mse"], "val_loss": scores["mse"]}
    metrics.update({"val_rmse": scores["rmse"], "val_mae": scores["mae"], "seconds": time.perf_counter() - started})
    return one_epoch_fit(FitResult(status="completed"), metrics, callbacks, started)


CONSTANT = Trainer(
    "constant",
    fit,
    ignores=frozenset({"lr", "weight_decay", "row_l2", "momentum", "batch_size", "n_factors"}),
    unused=frozenset({"optimizer", "lazy_sgd", "one_cycle", "schedule", "y_range", "init", "epochs", "seed"}),
    settings=lambda params, options: "none (a constant)",
)


@register("constant", init="constant(0)", trainer=CONSTANT, uses_y_range=False, epoch_cost=0.01)
def _constant(n_users, n_movies, n_factors, y_range, sparse, *, level=3.0):
    """One rating for every pair: its `level`."""
    return Constant(n_users, n_movies, level)
