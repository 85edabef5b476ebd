"""A study's search space: the variant's registered space with the experiment's overrides, and Optuna's suggest."""

from __future__ import annotations

from dataclasses import replace

import optuna

from cfexp.config.experiment import RunConfig
from cfexp.config.sweep_table import StudySpec
from cfexp.errors import UserError
from cfexp.fit import common as fitting
from cfexp.variants import runner
from cfexp.variants.registry import Param, get_variant

# Settings of the run itself; any other searched key is a variant option (e.g. nn's hidden, dropout).
RUN_LEVEL = {"n_factors", "lr", "weight_decay", "row_l2", "momentum", "batch_size"}


def search_space(spec: StudySpec) -> dict[str, Param]:
    """The variant's registered space with the experiment's overrides (False drops a key)."""
    variant = get_variant(spec.run.variant)
    space = dict(variant.space)
    for key, override in spec.space.items():
        if key not in RUN_LEVEL and key not in variant.options:
            raise UserError(f"study {spec.name!r}: {key!r} is not searchable for {variant.name}")
        if key in variant.ignores and (override is False or key in spec.inherited):
            continue  # [sweep.space] sets it for the variants that have it
        if key in variant.ignores:
            raise UserError(
                f"study {spec.name!r}: {variant.name}'s {variant.trainer.name} trainer does not use "
                f"{key!r}; drop it from this study with space.{key} = false"
            )
        if override is False:
            space.pop(key, None)
            continue
        if "choices" in override:
            space[key] = Param("categorical", choices=tuple(override["choices"]))
            continue
        kind = override.get("type") or (space[key].kind if key in space else None)
        if kind is None:
            kind = "int" if all(isinstance(override[k], int) for k in ("low", "high")) else "float"
        space[key] = Param(kind, override["low"], override["high"], bool(override.get("log", False)))
    return space


def check_study(spec: StudySpec, data: runner.SplitTensors) -> None:
    """Fail before any store is touched if the study's run, or its space at either end of a range, is impossible."""
    space = search_space(spec)
    if not get_variant(spec.run.variant).rates and spec.objective == "val_loss":
        raise UserError(
            f"study {spec.name!r}: {spec.run.variant} ranks and predicts no ratings, so it has no val MSE to tune; "
            f'give it objective = "ndcg@{data.protocol.k}"'
        )
    for end in ("low", "high"):
        params = {k: (getattr(p, end) if p.kind != "categorical" else p.choices[0]) for k, p in space.items()}
        params = {k: int(v) if space[k].kind == "int" else v for k, v in params.items()}
        run = runner.resolved(with_params(spec.run, params), data)
        fitting.Recipe(**run.recipe_kwargs())
        runner.build_for(run, data)


def suggest(trial: optuna.Trial, space: dict[str, Param]) -> dict:
    params = {}
    for key, p in space.items():
        if p.kind == "categorical":
            params[key] = trial.suggest_categorical(key, list(p.choices))
        elif p.kind == "int":
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log)
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log)
    return params


def with_params(run: RunConfig, params: dict) -> RunConfig:
    """The run with a trial's values: run-level settings replaced, the rest as variant options."""
    options = dict(run.options)
    changes = {}
    for key, value in params.items():
        if key == "lr":
            run = run.with_lr(value)
        elif key in RUN_LEVEL:
            changes[key] = value
        else:
            options[key] = value
    return replace(run, **changes, options=options)
