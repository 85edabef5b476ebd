"""The final fit of a chosen configuration: trained on train + validation for the epochs its trial chose, then
scored once on the test split, which nothing before it has seen.

The fit has no validation part: it selects nothing. Its scores are MSE/RMSE/MAE on the test ratings and the ranking
metrics with the test ratings as the relevant ones, where a user's seen movies are their train + validation ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import torch
from torch import nn

from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as cfdata
from cfexp.data.ratings import Ratings, Split, TensorPart
from cfexp.fit.common import Callback, FitResult, Recipe, StopTraining, evaluate, resolve_device
from cfexp.metrics import ranking
from cfexp.metrics.ranking import Protocol, RankingData
from cfexp.variants import runner
from cfexp.variants.registry import get_variant


@dataclass(frozen=True)
class Holdout:
    """The final fit's data: train + validation to fit, the test split to score."""

    ratings: Ratings
    fit: TensorPart
    test: TensorPart
    protocol: Protocol
    device: torch.device

    @cached_property
    def ranking(self) -> RankingData:
        return RankingData(self.ratings, self.fit, self.test, self.protocol)

    @cached_property
    def rating_range(self) -> tuple[float, float]:
        return runner.fitted_range(self.fit)


def holdout_for(ratings: Ratings, split: Split, device: str, protocol: Protocol) -> Holdout | None:
    """The Holdout of a split with a test part (None without one: the seed reproduction has none)."""
    if not len(split.test):
        return None
    dev = resolve_device(device)
    fit_part = cfdata.tensors(ratings, split.refit_rows(), dev)
    return Holdout(ratings, fit_part, cfdata.tensors(ratings, split.test, dev), protocol, dev)


class StopAfter(Callback):
    """Ends a fit after `epochs` epochs, with the schedule of the whole run (a one-cycle keeps its shape)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch + 1 >= self.epochs:
            raise StopTraining(f"final fit: {self.epochs} epoch(s), as its trial chose")


def epochs_of(run: RunConfig, best_epoch: int | None, epochs_run: int) -> int:
    """How long the final fit trains: to the trial's best epoch where the trial ended on it, else as long as the
    trial ran (an early stop included)."""
    if run.restore_best and best_epoch is not None:
        return best_epoch + 1
    return max(1, epochs_run or run.epochs)


def fit_final(
    run: RunConfig, holdout: Holdout, epochs: int, callbacks: Sequence = ()
) -> tuple[nn.Module, FitResult, dict[str, float]]:
    """Train `run` on train + validation for `epochs` epochs and score it on test: (model, result, test metrics)."""
    run = replace(run, restore_best=False, patience=0)
    variant = get_variant(run.variant)
    recipe = Recipe(**run.recipe_kwargs())
    model = runner.build_for(run, holdout)
    fit = holdout.fit
    no_validation = cfdata.TensorPart(
        *(t[:0] if t is not None else None for t in (fit.users, fit.movies, fit.ratings, fit.times))
    )
    result = variant.trainer.fit(model, holdout.fit, no_validation, recipe, [StopAfter(epochs), *callbacks])
    if result.status == "diverged":
        return model, result, {}
    scores: dict[str, float] = {}
    if variant.rates:
        found = evaluate(model, holdout.test)
        scores = {"test_loss": found["mse"], "test_rmse": found["rmse"], "test_mae": found["mae"]}
    ranked = ranking.evaluate(model, holdout.ranking)
    scores.update({f"test_{k}": v for k, v in ranked.items()})
    return model, result, {k: float(v) for k, v in scores.items() if math.isfinite(v)}
