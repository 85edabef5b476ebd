"""The baselines' closed-form fits (`mean`, `bias`, `popular`): one pass over the training ratings, reported as one
epoch so that tracking, pruning and the report treat them as any other trial."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from cfexp.data.ratings import TensorPart
from cfexp.fit.common import FitResult, Recipe, evaluate, notify, one_epoch_fit
from cfexp.models.modules import BiasModel, Popularity


def fit_biases(model: BiasModel, train: TensorPart) -> None:
    """LensKit's Bias: the global mean, then each movie's damped mean offset from it, then each user's damped mean
    offset from mean + movie bias. A damping of d adds d ratings of zero offset to every movie and user."""
    ratings = train.ratings.double()
    mean = ratings.mean()
    model.mean.fill_(float(mean))
    model.ub.weight.zero_()  # whatever an init put there: the biases are fitted here (or, for `mean`, absent)
    model.mb.weight.zero_()
    if model.damping is None:
        return
    n_users, n_movies = model.ub.num_embeddings, model.mb.num_embeddings
    movie_bias = _damped_means(train.movies, ratings - mean, n_movies, model.damping)
    user_bias = _damped_means(train.users, ratings - mean - movie_bias[train.movies], n_users, model.damping)
    model.mb.weight[:, 0] = movie_bias.to(model.mb.weight.dtype)
    model.ub.weight[:, 0] = user_bias.to(model.ub.weight.dtype)


def _damped_means(index: torch.Tensor, offsets: torch.Tensor, size: int, damping: float) -> torch.Tensor:
    sums = torch.zeros(size, dtype=offsets.dtype, device=offsets.device).index_add_(0, index, offsets)
    counts = torch.bincount(index, minlength=size).to(offsets.dtype)
    return sums / (counts + damping)


@torch.no_grad()
def fit(model: nn.Module, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Fit a baseline in closed form; its one "epoch" scores the validation set (a ranking-only model has no MSE)."""
    device = train.ratings.device
    model.to(device)
    result = FitResult(status="completed")
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    if isinstance(model, Popularity):
        model.counts.copy_(torch.bincount(train.movies, minlength=len(model.counts)).to(model.counts.dtype))
        scores = {"mse": math.nan, "rmse": math.nan, "mae": math.nan}
    else:
        fit_biases(model, train)
        scores = evaluate(model, val)
    fitted = time.perf_counter()
    train_loss = evaluate(model, train)["mse"] if not isinstance(model, Popularity) else math.nan
    metrics = {
        "epoch": 0,
        "train_loss": train_loss,
        "val_loss": scores["mse"],
        "val_rmse": scores["rmse"],
        "val_mae": scores["mae"],
        "seconds": time.perf_counter() - started,
        "train_seconds": fitted - started,
    }
    return one_epoch_fit(result, metrics, callbacks, started)
