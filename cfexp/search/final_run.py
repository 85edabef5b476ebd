"""A finished study's final model: its best trial refit on train + validation and scored once on test
(cfexp.variants.refit), as an MLflow run of its own (role `final`, under the study's
parent), whose model is the one registered.

One process makes it: the claim is a study attr taken under the stores' lock, with its owner, so that a process
killed mid-fit leaves a claim the next sweep takes over. A later sweep that finds a better trial makes a new one.
"""

from __future__ import annotations

import time
from dataclasses import replace

from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from cfexp import keys
from cfexp.data.key import ATTR as DATA_ATTR
from cfexp.search.recovery import (
    FINAL,
    final_fit_running,
)  # study user attr: {trial, state, owner, since} while claimed; run_id, scores once done
from cfexp.search.recovery import FINAL_ROLE as ROLE
from cfexp.serve.pyfunc import recommender_for
from cfexp.system import faults
from cfexp.system.processes import this_process
from cfexp.track import EpochLogger
from cfexp.variants import get_variant, refit, runner

REFIT_TRIES = 3  # the best trial's refit, then the next best's by validation where one diverges


def final_of(study) -> dict | None:
    """The study's final model as recorded (None before there is one)."""
    record = study.user_attrs.get(FINAL)
    return record if record and record.get("state") == "COMPLETE" else None


def needs_final(study, best: FrozenTrial) -> bool:
    """Whether the best trial still lacks a final model that nobody alive is making."""
    record = study.user_attrs.get(FINAL)
    if not record or record.get("trial") != best.number:
        return True
    return record.get("state") != "COMPLETE" and not final_fit_running(record)


def make_final(outcome, tracker, holdout: refit.Holdout, lock, key) -> dict | None:
    """Refit the study's best trial and log it as the study's final run; its record, or None when there is none to
    make (no complete trial, or another process is making it).

    A refit that diverges (its training loss, never a test figure, says so) is logged FAIL, and the next trials by
    validation are refit in turn, up to REFIT_TRIES in all: selection stays with validation, and the record names
    the trial refit (`refit_trial`) and why the better ones were passed over."""
    study = outcome.study
    best = outcome.best()
    if best is None or holdout is None:
        return None
    with lock():
        if not needs_final(study, best):
            return None
        study.set_user_attr(
            FINAL, {"trial": best.number, "state": "RUNNING", "owner": this_process(), "since": time.time()}
        )
    passed_over: list[str] = []
    for trial in _by_validation(study, best):
        extra = {"refit_trial": trial.number, "passed_over": passed_over} if passed_over else {}
        state, record = _refit(outcome, tracker, holdout, key, best, trial, extra)
        if state == "DIVERGED":
            passed_over.append(f"t{trial.number}: {record['reason']}")
            continue
        if state == "COMPLETE":
            faults.point("final")
            tracker.end_run(record["run_id"], "COMPLETE")
            return record
        return None  # the tracking store failed: recorded, and the next sweep tries again
    study.set_user_attr(FINAL, {"trial": best.number, "state": "FAIL", "reason": "; ".join(passed_over)})
    return None


def _by_validation(study, best: FrozenTrial) -> list[FrozenTrial]:
    """The best trial, then the study's other complete trials from the best by validation on."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    ordered = sorted((t for t in done if t.number != best.number), key=lambda t: t.value)
    if study.direction == StudyDirection.MAXIMIZE:
        ordered.reverse()
    return [best, *ordered][:REFIT_TRIES]


def _refit(outcome, tracker, holdout: refit.Holdout, key, best: FrozenTrial, trial: FrozenTrial, extra: dict):
    """One refit of `trial` as a final run: ("COMPLETE", record), ("DIVERGED", {reason}) or ("TRACKING", None)."""
    study, spec = outcome.study, outcome.spec
    run = replace(outcome.objective.run_for(trial.params, trial.number), name=f"{spec.name}-final")
    epochs = refit.epochs_of(run, trial.user_attrs.get("best_epoch"), len(trial.user_attrs.get("history", [])))
    params = {**runner.params(run), "refit_epochs": epochs, "refit_of_trial": trial.number}
    tags = {
        **outcome.objective.tags,
        keys.ROLE: ROLE,
        keys.BEST_TRIAL: best.number,
        "dataset.digest": holdout.ratings.digest,
        DATA_ATTR: key.key,
    }
    child = tracker.start_run(run.name, params, tags, parent_id=outcome.parent_id)
    claim = {"trial": best.number, "state": "RUNNING", "owner": this_process(), "since": time.time()}
    study.set_user_attr(FINAL, {**claim, "run_id": child})  # so that a reconciler tells this run from a lost one
    logger = EpochLogger(tracker, child, get_variant(run.variant).epoch_metrics)
    try:
        model, result, scores = refit.fit_final(run, holdout, epochs, [logger])
    except BaseException as exc:
        logger.flush()
        tracker.end_run(child, "FAIL", {keys.FAIL_REASON: f"{type(exc).__name__}: {exc}"}, "KILLED")
        raise
    logger.flush()
    if result.status == "diverged":
        tracker.end_run(child, "FAIL", {keys.FAIL_REASON: result.reason})
        return "DIVERGED", {"reason": result.reason}
    selection = {f"selection_{k}": v for k, v in outcome.selection_scores(trial).items()}
    tracker.log_metrics(child, {**scores, **selection, "seconds": result.seconds}, step=len(result.history))
    tracker.log_artifacts(child, params, result.history)
    tracker.log_model(child, recommender_for(model, holdout.ratings))
    errors = tracker.wait(child)  # the study records its final model only once the run and model are written
    if errors:
        study.set_user_attr(FINAL, {"trial": best.number, "state": "FAIL", "reason": f"tracking: {errors[0]}"})
        tracker.end_run(child, "FAIL", {keys.FAIL_REASON: f"tracking: {errors[0]}"}, "KILLED")
        return "TRACKING", None
    record = {"trial": best.number, "state": "COMPLETE", "run_id": child, "epochs": epochs}
    record.update({"seconds": result.seconds, **scores, **extra})
    study.set_user_attr(FINAL, record)  # the commit point; the run's end comes after it
    return "COMPLETE", record
