"""From a resolved RunConfig to a trained model: data on the device, defaults from the data, build and fit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from cfexp import data as cfdata
from cfexp import gibbs
from cfexp.config import RunConfig
from cfexp.data import Ratings, Split, TensorPart
from cfexp.errors import UserError
from cfexp.models import Init, build_model, get_variant
from cfexp.train import Callback, FitResult, Recipe, evaluate, fit, resolve_device


@dataclass(frozen=True)
class SplitTensors:
    """The data a run trains on: the ratings, its split, and each part as tensors on the device."""

    ratings: Ratings
    split: Split
    device: torch.device
    train: TensorPart
    val: TensorPart
    test: TensorPart | None


def to_device(ratings: Ratings, split: Split, device: str = "auto") -> SplitTensors:
    dev = resolve_device(device)
    test = cfdata.tensors(ratings, split.test, dev) if len(split.test) else None
    return SplitTensors(
        ratings,
        split,
        dev,
        cfdata.tensors(ratings, split.train, dev),
        cfdata.tensors(ratings, split.val, dev),
        test,
    )


def resolved(run: RunConfig, data: SplitTensors) -> RunConfig:
    """The run with its defaults filled in from the data: the variant's init, and y_range where it uses one."""
    variant = get_variant(run.variant)
    y_range = (run.y_range or data.ratings.rating_range) if variant.uses_y_range else None
    return replace(run, init=str(Init.parse(run.init or variant.init)), y_range=y_range, device=str(data.device))


def params(run: RunConfig) -> dict:
    """The run's settings as its params, less those its variant's trainer does not use (a sampler has no lr)."""
    unused = get_variant(run.variant).unused_settings
    return {k: v for k, v in run.params().items() if k not in unused}


def build_for(run: RunConfig, data: SplitTensors) -> nn.Module:
    """The run's model, initialised from its seed (y_range defaults to the data's rating range)."""
    torch.manual_seed(run.seed)
    model = build_model(
        run.variant,
        data.ratings.n_users,
        data.ratings.n_movies,
        n_factors=run.n_factors,
        init=run.init,
        y_range=run.y_range or data.ratings.rating_range,
        options=run.options,
    )
    if get_variant(run.variant).trainer == "gibbs" and run.epochs <= model.burn_in:
        raise UserError(
            f"run {run.name!r}: {run.epochs} Gibbs sweep(s) keep no draw after burn_in = {model.burn_in}; "
            "give it more epochs or a shorter burn_in"
        )
    return model


def fit_run(run: RunConfig, data: SplitTensors, callbacks: Sequence[Callback] = ()) -> tuple[nn.Module, FitResult]:
    """Build, train and (where there is a test split) test one run."""
    recipe = Recipe(**run.recipe_kwargs())
    model = build_for(run, data)
    trainer = gibbs.fit if get_variant(run.variant).trainer == "gibbs" else fit
    result = trainer(model, data.train, data.val, recipe, callbacks)
    if data.test is not None and result.status != "diverged":
        result.test_loss = evaluate(model, data.test)["mse"]
    return model, result
