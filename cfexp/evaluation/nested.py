"""`cfexp evaluate --nested`: each study's search run again inside every outer fold, so that a fold scores the whole
procedure (search, selection and final fit) and not one configuration chosen on rows that overlap it.

Inside an outer fold's training rows a seeded validation share (the experiment's val_pct) is carved. The study's
budget of trials runs there, in an Optuna study in memory, with the sweep's sampler, pruner and warm starts; its
best trial is refit on the fold's training rows for the epochs it chose and scored once on the fold.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import optuna
from optuna.trial import TrialState

from cfexp.data.ratings import Split, tensors
from cfexp.errors import UserError
from cfexp.fit import common as fitting
from cfexp.search import samplers
from cfexp.search.objective import Pruning, objective_value
from cfexp.search.space import search_space, suggest, with_params
from cfexp.search.sweep import make_pruner
from cfexp.variants import refit, runner


def inner_split(outer: Split, val_pct: float, seed: int) -> Split:
    """A seeded validation share of the outer fold's training rows; the rest trains."""
    picked = np.random.default_rng([seed, 2]).permutation(len(outer.train))[: max(1, int(val_pct * len(outer.train)))]
    val = np.sort(outer.train[picked])
    return Split(np.setdiff1d(outer.train, val), val, np.empty(0, dtype=np.int64))


def nested_fold(experiment, spec, ratings, outer: Split, protocol, fold: int):
    """Search `spec` inside the fold; (the best run, its trial number, a function that refits and scores it)."""
    sweep = experiment.sweep
    inner = inner_split(outer, experiment.data.val_pct, experiment.data.seed + fold)
    data = runner.to_device(ratings, inner, spec.run.device, protocol)
    study = optuna.create_study(direction=spec.direction, pruner=make_pruner(sweep, spec.run.epochs))
    for params in spec.enqueue:
        study.enqueue_trial(params)
    budget = spec.trials or sweep.trials
    startup = samplers.startup_trials(budget, sweep.startup_trials)
    seed = samplers.study_seed(sweep.seed, f"{experiment.name}/{spec.name}/fold{fold}")
    space = search_space(spec)
    for number in range(budget):
        done = samplers.finished(sweep.sampler, study.get_trials(deepcopy=False))
        study.sampler = samplers.make_sampler(sweep.sampler, seed, seed + number, startup, done)
        trial = study.ask()
        run = runner.resolved(with_params(spec.run, suggest(trial, space)), data)
        _, result = runner.fit_run(run, data, [Pruning(trial, spec.objective)], spec.objective != "val_loss")
        value = objective_value(result, spec.objective)
        if result.status == "stopped":
            study.tell(trial, state=TrialState.PRUNED)
        elif result.status == "diverged" or not math.isfinite(value):
            study.tell(trial, state=TrialState.FAIL)
        else:
            trial.set_user_attr("epochs", refit.epochs_of(run, result.best_epoch, len(result.history)))
            study.tell(trial, value)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise UserError(f"fold {fold}: study {spec.name} completed no trial of {budget} inside the fold")
    best = study.best_trial
    run = replace(with_params(spec.run, best.params), name=f"{spec.name}-fold{fold}")
    holdout = refit.Holdout(
        ratings,
        tensors(ratings, outer.train, data.device),
        tensors(ratings, outer.val, data.device),
        protocol,
        data.device,
    )
    run = runner.resolved(run, holdout)

    def fit() -> tuple[fitting.FitResult, dict[str, float]]:
        _, result, scores = refit.fit_final(run, holdout, best.user_attrs["epochs"])
        metrics = {"mse": scores.get("test_loss", math.nan)}
        metrics.update({k[len("test_") :]: v for k, v in scores.items() if "_at_" in k})
        return result, metrics

    return run, best.number, fit
