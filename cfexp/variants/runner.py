"""From a resolved RunConfig to a trained model: data on the device, defaults from the data, build and fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import torch
from torch import nn

from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as cfdata
from cfexp.data.implicit import free_bytes
from cfexp.data.ratings import Ratings, Split, TensorPart
from cfexp.errors import UserError
from cfexp.fit.common import Callback, FitResult, Recipe, evaluate, resolve_device
from cfexp.metrics.ranking import Protocol, RankingCallback, RankingData
from cfexp.models.inits import Init
from cfexp.variants.registry import build_model, get_variant


@dataclass(frozen=True)
class SplitTensors:
    """The data a run trains on: the ratings, its split, and each part as tensors on the device."""

    ratings: Ratings
    split: Split
    device: torch.device
    train: TensorPart
    val: TensorPart
    test: TensorPart | None
    protocol: Protocol = field(default_factory=Protocol)

    @cached_property
    def ranking(self) -> RankingData:
        """The full-ranking protocol's view of the split (built on first use)."""
        return RankingData(self.ratings, self.train, self.val, self.protocol)

    @cached_property
    def rating_range(self) -> tuple[float, float]:
        """The lowest and highest rating a model may see: of the rows it is fitted and selected on, never test's."""
        return fitted_range(self.train, self.val)


def fitted_range(*parts: TensorPart) -> tuple[float, float]:
    values = torch.cat([part.ratings for part in parts if len(part)])
    return float(values.min()), float(values.max())


def to_device(ratings: Ratings, split: Split, device: str = "auto", protocol: Protocol | None = None) -> SplitTensors:
    dev = resolve_device(device)
    test = cfdata.tensors(ratings, split.test, dev) if len(split.test) else None
    return SplitTensors(
        ratings,
        split,
        dev,
        cfdata.tensors(ratings, split.train, dev),
        cfdata.tensors(ratings, split.val, dev),
        test,
        protocol or Protocol(),
    )


def resolved(run: RunConfig, data: SplitTensors) -> RunConfig:
    """The run with its defaults filled in from the data: the variant's init, and y_range where it uses one."""
    variant = get_variant(run.variant)
    y_range = (run.y_range or data.rating_range) if variant.uses_y_range else None
    return replace(run, init=str(Init.parse(run.init or variant.init)), y_range=y_range, device=str(data.device))


def params(run: RunConfig) -> dict:
    """The run's settings as its params, less those its variant's trainer does not use (a sampler has no lr)."""
    unused = get_variant(run.variant).unused_settings
    return {k: v for k, v in run.params().items() if k not in unused}


def build_for(run: RunConfig, data: SplitTensors) -> nn.Module:
    """The run's model, initialised from its seed (y_range, where the variant uses one, defaults to the range of
    the ratings it is fitted on)."""
    torch.manual_seed(run.seed)
    variant = get_variant(run.variant)
    y_range = run.y_range or (data.rating_range if variant.uses_y_range else None)
    model = build_model(
        run.variant,
        data.ratings.n_users,
        data.ratings.n_movies,
        n_factors=run.n_factors,
        init=run.init,
        options=run.options,
        **({"y_range": y_range} if y_range else {}),
    )
    trainer = variant.trainer
    refusal = trainer.check(run, model) if trainer.check else None
    if refusal:
        raise UserError(refusal)
    check_memory(model, data.device)
    return model


def check_memory(model: nn.Module, device: torch.device) -> None:
    """Refuse, in one line, a model whose fit needs more memory than the device has free."""
    need = getattr(model, "fit_bytes", None)
    if need is not None:
        available = free_bytes(device)
        if need() > available:
            raise UserError(model.too_big(available))


def fit_run(
    run: RunConfig, data: SplitTensors, callbacks: Sequence[Callback] = (), rank_each_epoch: bool = False
) -> tuple[nn.Module, FitResult]:
    """Build, train, rank (the final model; each epoch's too when asked) and, where there is a test split, test."""
    recipe = Recipe(**run.recipe_kwargs())
    model = build_for(run, data)
    variant = get_variant(run.variant)
    # A ranking-only variant picks its best epoch by its ranking; a sampler's model exists only once it ends.
    picks_by_ranking = not variant.rates and (run.restore_best or run.patience > 0)
    per_epoch = (rank_each_epoch or picks_by_ranking) and variant.trainer.ranks_each_epoch
    ranker = RankingCallback(data.ranking, per_epoch)
    result = variant.trainer.fit(model, data.train, data.val, recipe, [ranker, *callbacks])
    result.ranking, result.ranking_seconds = ranker.final, ranker.seconds
    if data.test is not None and result.status != "diverged" and variant.rates:
        result.test_loss = evaluate(model, data.test)["mse"]
    return model, result
