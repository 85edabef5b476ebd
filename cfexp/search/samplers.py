"""The sweep's samplers: the candidates `make bench` measures, each study's own seed, and a random start fitted to
the budget, so that model-based sampling drives the trials of a small study too.

A sampler is made anew for every trial a process claims, seeded by the study's seed plus the number of its trials:
processes sharing a study draw different points, and a study draws the same sequence however its trials were
spread over processes and restarts. Each trial records how its point was chosen (`sampled_by`).
"""

from __future__ import annotations

import hashlib

import optuna
from optuna.trial import TrialState

from cfexp import keys

MAX_STARTUP = 10  # Optuna's own default number of random trials, for budgets of 40 and more
SAMPLED = keys.SAMPLED  # trial user attr and run tag: enqueued | retry | startup | model


def study_seed(sweep_seed: int, study_name: str) -> int:
    """The study's own seed: different studies draw different points, a rerun the same ones."""
    return int(hashlib.sha256(f"{sweep_seed}/{study_name}".encode()).hexdigest()[:8], 16)


def startup_trials(budget: int, setting: int | None = None) -> int:
    """Trials drawn at random before the model takes over: a quarter of the budget, at least 2 and at most 10."""
    if setting is not None:
        return setting
    return max(2, min(MAX_STARTUP, budget // 4))


def make_sampler(kind: str, seed: int, trial_seed: int, startup: int, finished: int) -> optuna.samplers.BaseSampler:
    """The sampler for the next trial of a study whose own seed is `seed`, with `finished` trials done."""
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=trial_seed)
    if kind == "tpe-optuna":  # Optuna's defaults, for the comparison: 10 random trials first
        return optuna.samplers.TPESampler(seed=trial_seed)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=trial_seed, n_startup_trials=startup, deterministic_objective=True)
    if kind == "qmc-tpe" and finished < startup:
        # one scrambled Sobol sequence per study (its seed): the start covers the space evenly
        return optuna.samplers.QMCSampler(qmc_type="sobol", scramble=True, seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=trial_seed, n_startup_trials=startup, multivariate=True)


def finished(kind: str, trials: list[optuna.trial.FrozenTrial]) -> int:
    """The trials the sampler learns from (GP: the complete ones; TPE: the pruned ones too)."""
    states = (TrialState.COMPLETE,) if kind == "gp" else (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(t.state in states for t in trials)


def phase(kind: str, startup: int, finished: int) -> str:
    """How a sampler made by make_sampler chooses the next point: at random (startup) or from a model."""
    if kind == "random" or finished < (10 if kind == "tpe-optuna" else startup):
        return "startup"
    return "model"


def sampled_by(trial: optuna.trial.FrozenTrial, kind: str, startup: int, finished: int) -> str:
    """What chose a trial's point: a warm start, a retry of a lost trial, or the sampler's phase."""
    if "fixed_params" in trial.system_attrs:
        return "retry" if trial.system_attrs.get("failed_trial") is not None else "enqueued"
    return phase(kind, startup, finished)
