"""Trials whose process is gone: found, failed, retried with the same params, and their MLflow runs closed.

On an RDB, Optuna's heartbeat finds them (study_store sets `heartbeat_interval` and `grace_period`; Optuna's
`fail_stale_trials` fails them and calls the retry callback). The journal has no heartbeat, so every trial records
its owner (host, pid and the process's start time) when it is claimed, and a running trial whose owner is gone from
this host is failed here and handed to the same retry callback. On either store the owner check also runs, so that
a killed process on this host is noticed at once rather than after the grace period. Either way the trial's MLflow
run then ends KILLED with a `cfexp.fail_reason`, and the retry's run is tagged with the run it replaces.
"""

from __future__ import annotations

import datetime
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from cfexp.processes import is_alive, this_process
from cfexp.study_store import GRACE_SECONDS, RETRY
from cfexp.track import Tracker

FINAL, FINAL_ROLE = "cfexp.final", "final"  # the study attr and MLflow role of its final fit (cfexp.final_run)
OWNER = "cfexp.owner"  # user attr: the process running the trial
LOST = "cfexp.lost"  # user attr: why the trial was lost (its process died, was interrupted, or could not track)
FAIL_REASON = "fail_reason"  # user attr: why a trial failed on its own (diverged, broke): counted as a failure
REPLACES = "cfexp.replaces_run"  # user attr of a retry: the MLflow run of the trial it retries


def own(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, right after it is asked for."""
    trial.set_user_attr(OWNER, this_process())


def lost_reason(trial: FrozenTrial, now: datetime.datetime) -> str | None:
    """Why a RUNNING trial is lost, or None while its process may still run it."""
    owner = trial.user_attrs.get(OWNER)
    if owner is None:  # asked for, then its process died before it could say so (or an older cfexp ran it)
        age = (now - trial.datetime_start).total_seconds() if trial.datetime_start else 0.0
        return f"lost: no owner recorded and started {age:.0f} s ago" if age > GRACE_SECONDS else None
    if is_alive(owner) is False:
        return f"lost: its process (pid {owner['pid']} on {owner['host']}) is gone"
    return None


def fail_lost_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> list[FrozenTrial]:
    """Fail the study's running trials whose process is gone, and enqueue each one's retry; returns them failed."""
    study_id = storage.get_study_id_from_name(study.study_name)
    now = datetime.datetime.now()
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = lost_reason(trial, now)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_user_attr(trial_id, LOST, reason)
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed it first
        failed.append(storage.get_trial(trial_id))
        RETRY(study, failed[-1])
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    optuna.storages.fail_stale_trials(study)  # the heartbeat's verdict, on an RDB; retried by the same callback
    failed += [t for t in study.get_trials(deepcopy=False) if t.number in running and t.state == TrialState.FAIL]
    return failed


def give_up(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """End a trial this process cannot finish (interrupted, or untrackable) as FAIL, and enqueue its retry."""
    try:
        trial.set_user_attr(LOST, reason)
    except optuna.exceptions.UpdateFinishedTrialError:
        return  # told already: nothing was lost
    RETRY(study, study.tell(trial, state=TrialState.FAIL))


def is_failure(trial: FrozenTrial) -> bool:
    """A trial that failed on its own account (diverged, broke), not because its process was lost."""
    return trial.state == TrialState.FAIL and FAIL_REASON in trial.user_attrs


def replaced_run(study: optuna.Study, trial: optuna.Trial, tracker: Tracker) -> str | None:
    """For a retry, the MLflow run of the trial it retries (looked up by tags when the lost trial never said)."""
    history = RETRY.retry_history(frozen(study, trial))
    if not history:
        return None
    return trial.user_attrs.get(REPLACES) or next(iter(trial_runs(tracker, study.study_name, history[-1])), None)


def frozen(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """A trial's stored state (Optuna 5's Trial shows no system attrs); trial numbers index a study's trials."""
    return study.get_trials(deepcopy=False)[trial.number]


def trial_runs(tracker: Tracker, study_name: str, number: int) -> list[str]:
    runs = tracker.search(f"tags.`optuna.study` = '{study_name}' and tags.`optuna.trial` = '{number}'")
    return [r.info.run_id for r in runs]


def close_runs(study: optuna.Study, tracker: Tracker, parent_id: str) -> int:
    """End the study's child runs still RUNNING whose trial is over, as the trial ended; returns how many."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    now = datetime.datetime.now()
    closed = 0
    for run in tracker.search(f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'"):
        run_id = run.info.run_id
        if run.data.tags.get("cfexp.role") == FINAL_ROLE:
            if _final_fit_gone(study):
                tracker.set_tags(run_id, {"optuna.state": "FAIL", "cfexp.fail_reason": "lost: its final fit stopped"})
                tracker.finish(run_id, "KILLED")
                closed += 1
            continue
        trial = trials.get(int(run.data.tags.get("optuna.trial", -1)))
        if trial is None or trial.state == TrialState.FAIL:
            attrs = trial.user_attrs if trial else {}
            reason = attrs.get(LOST) or attrs.get(FAIL_REASON) or "lost: the process running this trial stopped"
            tracker.set_tags(run_id, {"optuna.state": "FAIL", "cfexp.fail_reason": reason})
            tracker.finish(run_id, "KILLED")
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and _writer_gone(trial, now):
            # Optuna has the result; the process was killed before its background thread closed the run.
            tracker.set_tags(run_id, {"optuna.state": trial.state.name, "cfexp.note": "closed by a later sweep"})
            tracker.finish(run_id, trial.state.name)
        else:
            continue
        closed += 1
    return closed


REMOTE_CLAIM_SECONDS = 3600  # a final fit claimed by a process on another host is taken to be lost after this long


def final_fit_running(record: dict) -> bool:
    """Whether a final fit's claim (study attr FINAL) is held by a process that still runs it."""
    if record.get("state") != "RUNNING":
        return False
    alive = is_alive(record.get("owner", {}))
    if alive is None:  # another host: trust the claim for a while
        return time.time() - record.get("since", 0) <= REMOTE_CLAIM_SECONDS
    return alive


def _final_fit_gone(study: optuna.Study) -> bool:
    return not final_fit_running(study.user_attrs.get(FINAL) or {})


def _writer_gone(trial: FrozenTrial, now: datetime.datetime) -> bool:
    alive = is_alive(trial.user_attrs.get(OWNER, {}))
    if alive is None:  # another host: give its tracking thread the grace period to finish
        return bool(trial.datetime_complete) and (now - trial.datetime_complete).total_seconds() > GRACE_SECONDS
    return not alive
