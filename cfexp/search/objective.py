"""One trial of a study: its params from Optuna, its child MLflow run, the fit, pruning, and its verdict."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, replace

import optuna
import torch

from cfexp import keys
from cfexp.config.experiment import RunConfig
from cfexp.config.sweep_table import StudySpec
from cfexp.data.key import ATTR as DATA_ATTR
from cfexp.errors import UserError
from cfexp.fit import common as fitting
from cfexp.search import recovery
from cfexp.search.samplers import SAMPLED
from cfexp.search.space import suggest, with_params
from cfexp.search.summary_document import run_record
from cfexp.system import faults
from cfexp.system.processes import HOST
from cfexp.track import EpochLogger, Tracker, TrackingError
from cfexp.variants import runner
from cfexp.variants.registry import Param, get_variant


class TrialFailed(Exception):
    """A trial that diverged or broke: Optuna records it FAIL, it counts against max_failures, the study goes on."""


class TrialLost(Exception):
    """A trial that could not be tracked: FAIL, and retried later, since the configuration is not at fault."""


class Pruning:
    """Reports each epoch's value of the study's objective (val_loss, or a ranking metric) to Optuna and stops the
    fit when the pruner says so."""

    def __init__(self, trial: optuna.Trial, key: str = "val_loss"):
        self.trial, self.key = trial, key

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.key, math.nan)
        if math.isfinite(value):
            self.trial.report(value, step=epoch)
            if self.trial.should_prune():
                raise fitting.StopTraining(f"pruned at epoch {epoch}")


def objective_value(result: fitting.FitResult, key: str) -> float:
    """What the study optimises: the best val loss, or the final model's ranking metric `key`."""
    return result.best_val_loss if key == "val_loss" else result.ranking.get(key, math.nan)


def better(value: float, than: float, key: str) -> bool:
    return value < than if key == "val_loss" else value > than


@dataclass
class BestModel:
    """The best model this process trained in a study, kept to be logged when the process leaves it."""

    value: float
    run_id: str
    model: object


class Objective:
    """Trains and tracks one trial at a time for a study; `best` is this process's best model of it."""

    def __init__(
        self,
        spec: StudySpec,
        study_name: str,
        data: runner.SplitTensors,
        tracker: Tracker,
        parent_id: str,
        rank_each_epoch: bool = False,
        data_key: str = "",
    ):
        self.spec, self.study_name, self.data, self.tracker, self.parent_id = spec, study_name, data, tracker, parent_id
        # per-epoch ranking when asked, and always when the study tunes (and prunes) for ranking
        self.rank_each_epoch = rank_each_epoch or spec.objective != "val_loss"
        self.tags = {keys.EXPERIMENT: keys.experiment_of(study_name), keys.VARIANT: spec.run.variant}
        self.tags["optuna.study"] = study_name
        self.tags[keys.WORKER] = f"{HOST}:{os.getpid()}"  # which process (and machine) ran each trial
        self.tags.update({"dataset.digest": data.ratings.digest, DATA_ATTR: data_key})
        self.records: list[dict] = []
        self.best: BestModel | None = None
        self.keep_best = True  # keep a copy of the best model to log (not where a final fit makes the study's model)

    def run_for(self, params: dict, number: int) -> RunConfig:
        """The resolved run of trial `number` at `params`."""
        return runner.resolved(
            replace(with_params(self.spec.run, params), name=f"{self.spec.name}-t{number}"), self.data
        )

    def __call__(self, study: optuna.Study, trial: optuna.Trial, space: dict[str, Param], progress=None) -> float:
        run = self.run_for(suggest(trial, space), trial.number)
        tags = {**self.tags, "optuna.trial": trial.number, SAMPLED: trial.user_attrs.get(SAMPLED)}
        try:
            replaces = recovery.replaced_run(study, trial, self.tracker)
            if replaces:
                tags.update(
                    {
                        keys.RETRY_OF: replaces,
                        keys.RETRY_OF_TRIAL: recovery.RETRY.retry_history(recovery.frozen(study, trial))[-1],
                    }
                )
            child = self.tracker.start_run(run.name, runner.params(run), tags, parent_id=self.parent_id)
        except TrackingError as exc:
            raise TrialLost(f"tracking failed: {exc}") from None
        faults.point("run")
        trial.set_user_attr("mlflow_run_id", child)
        logger = EpochLogger(self.tracker, child, get_variant(run.variant).epoch_metrics)
        callbacks = [logger, Pruning(trial, self.spec.objective)] + ([progress.epochs(run)] if progress else [])
        verdict, reason, result = "FAIL", "", None
        try:
            model, result = runner.fit_run(run, self.data, callbacks, self.rank_each_epoch)
            verdict, reason = _verdict(result, self.spec.objective)
        except (RuntimeError, ValueError, MemoryError, UserError) as exc:  # a trial's own failure: the study goes on
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if isinstance(exc, torch.OutOfMemoryError):
                torch.cuda.empty_cache()  # give the next trial the memory this one could not use
        except BaseException as exc:  # interrupted (Ctrl-C) or a bug: the run ends KILLED, the sweep decides the rest
            why = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            logger.flush()
            self.tracker.set_tags(child, {"optuna.state": "FAIL", keys.FAIL_REASON: why})
            self.tracker.finish(child, "KILLED")
            raise
        logger.flush()  # what a failed fit logged before it broke
        history = result.history if result else []
        trial.set_user_attr("history", history)
        trial.set_user_attr("seconds", result.seconds if result else 0.0)
        if result is not None:
            trial.set_user_attr("best_val_loss", result.best_val_loss)
            trial.set_user_attr("best_epoch", result.best_epoch)
            trial.set_user_attr("ranking", result.ranking)
        self.tracker.log_outcome(child, runner.params(run), result, verdict, reason)
        errors = self.tracker.wait(child)  # Optuna hears the verdict only once the run is safely written
        if errors:
            self.tracker.set_tags(child, {"optuna.state": "FAIL", keys.FAIL_REASON: f"tracking: {errors[0]}"})
            self.tracker.finish(child, "KILLED")
            raise TrialLost(f"tracking failed: {errors[0]}")
        self.records.append({**run_record(run, result, child, verdict, reason), "trial": trial.number})
        if verdict == "PRUNED":
            raise optuna.TrialPruned(reason)
        if verdict == "FAIL":
            trial.set_user_attr(recovery.FAIL_REASON, reason)
            raise TrialFailed(reason)
        value = objective_value(result, self.spec.objective)
        if self.keep_best and (self.best is None or better(value, self.best.value, self.spec.objective)):
            self.best = BestModel(value, child, copy.deepcopy(model))
        return value


def _verdict(result: fitting.FitResult, objective: str) -> tuple[str, str]:
    if result.status == "diverged":
        return "FAIL", f"diverged: {result.reason}"
    if result.status == "stopped":
        return "PRUNED", result.reason
    if not math.isfinite(objective_value(result, objective)):
        return "FAIL", f"no {objective}: no user has a relevant movie in validation"
    return "COMPLETE", ""
