"""Everything Optuna: one study per (experiment, variant), the objective that wires train and track, resume."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna

from cfexp import runner, train
from cfexp.errors import UserError
from cfexp.models import Param
from cfexp.predictor import predictor_for
from cfexp.search_space import search_space, suggest, with_params
from cfexp.summary import run_record
from cfexp.sweep_config import StudySpec, SweepConfig
from cfexp.track import Tracker

DEFAULT_JOURNAL = Path("mlruns") / "optuna-journal.log"

optuna.logging.set_verbosity(optuna.logging.WARNING)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class TrialFailed(Exception):
    """A trial that diverged or broke: Optuna records it FAIL and the study goes on."""


def storage(url: str | None) -> optuna.storages.BaseStorage:
    """The default journal file under mlruns/ (safe for several processes on one machine), or an RDB URL."""
    if url and "://" in url:
        try:
            return optuna.storages.RDBStorage(url)
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
            raise UserError(f"cannot open Optuna storage {url!r}: {str(exc).splitlines()[0]}") from None
    path = Path(url) if url else DEFAULT_JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = optuna.storages.journal.JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


@dataclass
class StudyOutcome:
    spec: StudySpec
    study: optuna.Study
    parent_id: str
    seconds: float = 0.0
    records: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        states = [t.state for t in self.study.trials]
        return {
            "complete": states.count(optuna.trial.TrialState.COMPLETE),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL),
        }

    def best_rmse(self, best: optuna.trial.FrozenTrial) -> float:
        """The val RMSE at the best trial's best epoch."""
        history = best.user_attrs.get("history", [])
        at_best = min(history, key=lambda h: h["val_loss"]) if history else {}
        return at_best.get("val_rmse", math.sqrt(best.value))

    def row(self) -> dict:
        """One line of the sweep's closing table."""
        best = self.best()
        return {
            "study": self.study.study_name,
            "variant": self.spec.run.variant,
            "best_val_loss": best.value if best else None,
            "best_val_rmse": self.best_rmse(best) if best else None,
            **self.counts(),
            "params": best.params if best else {},
            "mlflow_run_id": best.user_attrs.get("mlflow_run_id") if best else None,
            "parent_run_id": self.parent_id,
        }

    def best(self) -> optuna.trial.FrozenTrial | None:
        done = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        return min(done, key=lambda t: t.value) if done else None


class Pruning:
    """Reports each epoch's val loss to Optuna and stops the fit when the pruner says so."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if math.isfinite(metrics["val_loss"]):
            self.trial.report(metrics["val_loss"], step=epoch)
            if self.trial.should_prune():
                raise train.StopTraining(f"pruned at epoch {epoch}")


def make_study(sweep: SweepConfig, name: str, epochs: int, store) -> optuna.Study:
    if sweep.sampler == "tpe":
        sampler = optuna.samplers.TPESampler(seed=sweep.seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=sweep.seed)
    if sweep.pruner == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=sweep.pruner_startup_trials, n_warmup_steps=sweep.pruner_warmup_epochs
        )
    elif sweep.pruner == "hyperband":
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    else:
        pruner = optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=name, storage=store, sampler=sampler, pruner=pruner, direction="minimize", load_if_exists=True
    )


class Sweep:
    """Runs every study of an experiment's [sweep], each trial a nested MLflow run under the study's parent."""

    def __init__(self, experiment, data: runner.SplitTensors, tracker: Tracker, store, progress=None):
        self.experiment, self.data, self.tracker, self.store = experiment, data, tracker, store
        self.config: SweepConfig = experiment.sweep
        self.progress = progress

    def run(self, trials: int | None = None, timeout: float | None = None) -> list[StudyOutcome]:
        """`trials` (from --trials) overrides every study's budget."""
        return [
            self.run_study(spec, trials or spec.trials or self.config.trials, timeout) for spec in self.config.studies
        ]

    def run_study(self, spec: StudySpec, budget: int, timeout: float | None) -> StudyOutcome:
        name = f"{self.experiment.name}/{spec.name}"
        study = make_study(self.config, name, spec.run.epochs, self.store)
        if not study.trials:
            for params in spec.enqueue:
                study.enqueue_trial(params)
        tags = {"cfexp.experiment": self.experiment.name, "cfexp.variant": spec.run.variant, "optuna.study": name}
        parent = self.tracker.find_parent(name) or self.tracker.start_run(
            spec.name, {"variant": spec.run.variant, "init": spec.run.init}, {**tags, "cfexp.role": "study"}
        )
        outcome = StudyOutcome(spec, study, parent)
        space = search_space(spec)
        finished = sum(t.state.is_finished() for t in study.trials)
        remaining = max(budget - finished, 0)
        state = {"best": None}
        objective = self._objective(outcome, space, tags, state)
        if self.progress:
            self.progress.start_study(name, remaining, finished)
        if remaining:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=(timeout or self.config.timeout) or None,
                catch=(TrialFailed,),
                callbacks=[self.progress.on_trial] if self.progress else None,
            )
        self._summarise(outcome, state["best"])
        return outcome

    def _objective(self, outcome: StudyOutcome, space: dict[str, Param], tags: dict, state: dict):
        spec = outcome.spec

        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial, space)
            named = replace(with_params(spec.run, params), name=f"{spec.name}-t{trial.number}")
            run = runner.resolved(named, self.data)
            run_tags = {**tags, "optuna.trial": trial.number, "dataset.digest": self.data.ratings.digest}
            child = self.tracker.start_run(run.name, runner.params(run), run_tags, parent_id=outcome.parent_id)
            trial.set_user_attr("mlflow_run_id", child)
            logger = self.tracker.epoch_logger(child)
            callbacks = [logger, Pruning(trial)] + ([self.progress.epochs(run)] if self.progress else [])
            verdict, reason, result = "FAIL", "", None
            try:
                model, result = runner.fit_run(run, self.data, callbacks)
                verdict, reason = _verdict(result)
            except (RuntimeError, ValueError, UserError) as exc:  # a trial's own failure: the study goes on
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            except BaseException:
                self.tracker.set_tags(child, {"optuna.state": "FAIL", "cfexp.fail_reason": "interrupted"})
                self.tracker.finish(child, "KILLED")
                raise
            history = result.history if result else []
            trial.set_user_attr("history", history)
            trial.set_user_attr("seconds", result.seconds if result else 0.0)
            self.tracker.close_run(child, runner.params(run), result, verdict, reason)
            outcome.records.append({**run_record(run, result, child, verdict, reason), "trial": trial.number})
            if verdict == "PRUNED":
                raise optuna.TrialPruned(reason)
            if verdict == "FAIL":
                trial.set_user_attr("fail_reason", reason)
                raise TrialFailed(reason)
            if state["best"] is None or result.best_val_loss < state["best"][0]:
                state["best"] = (result.best_val_loss, child, run, copy.deepcopy(model))
            return result.best_val_loss

        return objective

    def _summarise(self, outcome: StudyOutcome, best_this_session) -> None:
        """The parent run gets the best trial's params (as tags) and metrics, the counts and Optuna's figures."""
        best = outcome.best()
        counts = outcome.counts()
        metrics = {f"trials_{k}": v for k, v in counts.items()}
        tags = {"optuna.state": "COMPLETE" if best else "FAIL"}
        if best is not None:
            metrics.update({"best_val_loss": best.value, "best_val_rmse": outcome.best_rmse(best)})
            tags.update({f"best.{k}": v for k, v in best.params.items()})
            tags.update({"best.trial": best.number, "best.mlflow_run_id": best.user_attrs.get("mlflow_run_id")})
            if best_this_session is not None and best_this_session[1] == best.user_attrs.get("mlflow_run_id"):
                self._log_best_model(best_this_session)
        self.tracker.log_metrics(outcome.parent_id, metrics, step=len(outcome.study.trials))
        self.tracker.set_tags(outcome.parent_id, tags)
        self._log_study_figures(outcome)
        self.tracker.finish(outcome.parent_id, "COMPLETE")

    def _log_best_model(self, best) -> None:
        _, run_id, _, model = best
        ratings = self.data.ratings
        self.tracker.log_model(run_id, *predictor_for(model, ratings))
        self.tracker.set_tags(run_id, {"cfexp.best": "true"})

    def _log_study_figures(self, outcome: StudyOutcome) -> None:
        complete = outcome.counts()["complete"]
        if complete >= 1:
            self.tracker.log_plot(
                outcome.parent_id, _plot(outcome.study, "optimization_history"), "optuna/optimization_history.png"
            )
        if complete >= 2 and outcome.best().params:
            self.tracker.log_plot(
                outcome.parent_id, _plot(outcome.study, "param_importances"), "optuna/param_importances.png"
            )


def _plot(study: optuna.Study, kind: str):
    def draw():
        from optuna.visualization import matplotlib as optuna_plots

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return getattr(optuna_plots, f"plot_{kind}")(study)
            except (RuntimeError, ValueError):  # importance needs variation among the complete trials
                return None

    return draw


def _verdict(result: train.FitResult) -> tuple[str, str]:
    if result.status == "diverged":
        return "FAIL", f"diverged: {result.reason}"
    if result.status == "stopped":
        return "PRUNED", result.reason
    return "COMPLETE", ""
