"""A study as the sweep reports it: its counts and best trial, and its parent MLflow run's summary and best model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from cfexp import keys
from cfexp.config.sweep_table import StudySpec
from cfexp.search.final_run import final_of
from cfexp.search.objective import Objective
from cfexp.search.recovery import OWNER
from cfexp.serve.pyfunc import recommender_for
from cfexp.system import faults
from cfexp.system.processes import is_alive
from cfexp.track import Tracker
from cfexp.track.tracker import MODEL_TAG
from cfexp.variants import runner

DONE = keys.DONE  # study user attr: its parent run has been summarised


@dataclass
class StudyOutcome:
    spec: StudySpec
    study: optuna.Study
    parent_id: str
    objective: Objective
    seconds: float = 0.0
    final_seconds: float = 0.0  # what this process spent on the study's final fit
    working: bool = False  # this process has claimed a trial or made the final fit (the parent shows RUNNING)

    @property
    def final(self) -> dict | None:
        """The study's final model (refit on train + validation, scored on test), as the study records it."""
        return final_of(self.study)

    def selection_scores(self, best: FrozenTrial) -> dict[str, float]:
        """The best trial's validation figures: what selected it."""
        mse = best_val_loss(best)
        scores = {"val_loss": mse, "val_rmse": best_rmse(best)} if math.isfinite(mse) else {}
        scores.update({f"val_{k}": v for k, v in best.user_attrs.get("ranking", {}).items() if k != "ranked_users"})
        return scores

    @property
    def records(self) -> list[dict]:
        return self.objective.records

    def counts(self) -> dict[str, int]:
        return counts_of(self.study)

    def row(self) -> dict:
        """One line of the sweep's closing table."""
        best = self.best()
        mse = best_val_loss(best) if best else math.nan
        return {
            "study": self.study.study_name,
            "variant": self.spec.run.variant,
            "objective": self.spec.objective,
            "best_value": best.value if best else None,
            "best_val_loss": mse if math.isfinite(mse) else None,
            "best_val_rmse": best_rmse(best) if math.isfinite(mse) else None,
            **(best.user_attrs.get("ranking", {}) if best else {}),
            **{k: v for k, v in (self.final or {}).items() if k.startswith("test_")},
            "final_run_id": (self.final or {}).get("run_id"),
            **({"refit_trial": self.final["refit_trial"]} if "refit_trial" in (self.final or {}) else {}),
            **self.counts(),
            "params": best.params if best else {},
            "trial": best.number if best else None,
            "mlflow_run_id": best.user_attrs.get("mlflow_run_id") if best else None,
            "parent_run_id": self.parent_id,
        }

    def best(self) -> FrozenTrial | None:
        return best_of(self.study)


def best_of(study: optuna.Study) -> FrozenTrial | None:
    """The study's best complete trial (None before one completes)."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    return (min if study.direction == optuna.study.StudyDirection.MINIMIZE else max)(done, key=lambda t: t.value)


def counts_of(study: optuna.Study) -> dict[str, int]:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {
        "complete": states.count(TrialState.COMPLETE),
        "pruned": states.count(TrialState.PRUNED),
        "failed": states.count(TrialState.FAIL),
    }


def best_rmse(best: FrozenTrial) -> float:
    """The val RMSE at the best trial's best epoch."""
    history = [h for h in best.user_attrs.get("history", []) if math.isfinite(h.get("val_loss", math.nan))]
    at_best = min(history, key=lambda h: h["val_loss"]) if history else {}
    return at_best.get("val_rmse", math.sqrt(best_val_loss(best)))


def best_val_loss(trial: FrozenTrial) -> float:
    """A complete trial's best val MSE (NaN for a ranking-only variant); older trials stored it only as their value."""
    if "best_val_loss" in trial.user_attrs:
        value = trial.user_attrs["best_val_loss"]
        return math.nan if value is None else value
    return trial.value


def summarise(outcome: StudyOutcome, tracker: Tracker) -> None:
    """The study's parent run summarised and ended by the sweep: the study is then done (`DONE`)."""
    summarise_parent(outcome.study, tracker, outcome.parent_id, done=True)


def summarise_parent(study: optuna.Study, tracker: Tracker, parent_id: str, done: bool = False) -> None:
    """The parent run gets the best trial's params (as tags) and metrics, the counts and Optuna's figures, and ends.

    Its writes are waited for, then `done` marks the study DONE in Optuna, and only then does the parent end: a
    kill in between leaves a RUNNING parent, which the next command's reconciliation summarises again."""
    best = best_of(study)
    counts = counts_of(study)
    metrics = {f"trials_{k}": v for k, v in counts.items()}
    tags = {}
    if best is not None:
        metrics["best_value"] = best.value
        mse = best_val_loss(best)
        if math.isfinite(mse):
            metrics.update({"best_val_loss": mse, "best_val_rmse": best_rmse(best)})
        metrics.update({k: v for k, v in best.user_attrs.get("ranking", {}).items() if k != "ranked_users"})
        tags.update({f"best.{k}": v for k, v in best.params.items()})
        tags.update({"best.trial": best.number, "best.mlflow_run_id": best.user_attrs.get("mlflow_run_id")})
        final = final_of(study)
        if final is not None and final["trial"] == best.number:
            metrics.update({k: v for k, v in final.items() if k.startswith("test_") and k != "test_ranked_users"})
            tags[keys.FINAL_RUN_ID] = final["run_id"]
        _mark_best(tracker, parent_id, best.user_attrs.get("mlflow_run_id"))
    tracker.log_metrics(parent_id, metrics, step=len(study.get_trials(deepcopy=False)))
    tracker.set_tags(parent_id, tags)
    _log_study_figures(study, tracker, parent_id)
    tracker.wait(parent_id)
    if done:
        study.set_user_attr(DONE, True)
    faults.point("summary")
    tracker.end_run(parent_id, "COMPLETE" if best else "FAIL")


def _mark_best(tracker: Tracker, parent_id: str, best_run: str | None) -> None:
    """`cfexp.best` on the study's best run only (an earlier sweep may have marked another)."""
    marked = tracker.search(f"tags.mlflow.parentRunId = '{parent_id}' and tags.`{keys.BEST}` = 'true'")
    for run in marked:
        if run.info.run_id != best_run:
            tracker.set_tags(run.info.run_id, {keys.BEST: "false"})
    if best_run:
        tracker.set_tags(best_run, {keys.BEST: "true"})


def log_best_model(outcome: StudyOutcome, tracker: Tracker, last_out: bool) -> None:
    """Make sure the study's best trial has its model logged.

    The process that trained it logs the copy it kept. When that process is gone (killed before it could), the
    last process out of the study trains the trial again from its params (seeded, so the same model) and logs it."""
    best = outcome.best()
    run_id = best.user_attrs.get("mlflow_run_id") if best else None
    if run_id is None or MODEL_TAG in tracker.get_run(run_id).data.tags:
        return
    kept = outcome.objective.best
    ratings = outcome.objective.data.ratings
    if kept is not None and kept.run_id == run_id:
        tracker.log_model(run_id, recommender_for(kept.model, ratings))
        return
    if not last_out or is_alive(best.user_attrs.get(OWNER, {})):
        return  # its own process is still at work and will log it
    run = outcome.objective.run_for(best.params, best.number)
    model, _ = runner.fit_run(run, outcome.objective.data)
    tracker.log_model(run_id, recommender_for(model, ratings))


def _log_study_figures(study: optuna.Study, tracker: Tracker, parent_id: str) -> None:
    complete = counts_of(study)["complete"]
    if complete >= 1:
        tracker.log_plot(parent_id, _plot(study, "optimization_history"), "optuna/optimization_history.png")
    if complete >= 2 and best_of(study).params:
        tracker.log_plot(parent_id, _plot(study, "param_importances"), "optuna/param_importances.png")


def _plot(study: optuna.Study, kind: str):
    def draw():
        from optuna.visualization import matplotlib as optuna_plots

        try:
            return getattr(optuna_plots, f"plot_{kind}")(study)
        except (RuntimeError, ValueError):  # importance needs variation among the complete trials
            return None

    return draw
