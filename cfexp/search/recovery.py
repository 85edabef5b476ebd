"""Trials whose process is gone: found, failed and retried with the same params (their runs: cfexp.search.reconcile).

On an RDB, Optuna's heartbeat finds them (study_store sets `heartbeat_interval` and `grace_period`; Optuna's
`fail_stale_trials` fails them and calls the retry callback). The journal has no heartbeat, so every trial records
its owner (host, pid and the process's start time) when it is claimed, and a running trial whose owner is gone from
this host is failed here and handed to the same retry callback. On either store the owner check also runs, so that
a killed process on this host is noticed at once rather than after the grace period. Either way the trial's MLflow
run then ends KILLED with a `cfexp.fail_reason` (cfexp.search.reconcile), and the retry's run is tagged with the run it
replaces.
"""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from cfexp import keys
from cfexp.search.study_store import RETRY
from cfexp.system.processes import is_alive, this_process
from cfexp.track import Tracker

FINAL, FINAL_ROLE = keys.FINAL, "final"  # the study attr and MLflow role of its final fit (cfexp.search.final_run)
OWNER = keys.OWNER  # user attr: the process running the trial
LOST = keys.LOST  # user attr: why the trial was lost (its process died, was interrupted, or could not track)
FAIL_REASON = "fail_reason"  # user attr: why a trial failed on its own (diverged, broke): counted as a failure
REPLACES = keys.REPLACES_RUN  # user attr of a retry: the MLflow run of the trial it retries


def own(trial: optuna.Trial) -> None:
    """Record this process as the trial's owner, right after it is asked for."""
    trial.set_user_attr(OWNER, this_process())


def lost_reason(trial: FrozenTrial) -> str | None:
    """Why a RUNNING trial is lost, or None while its process may still run it. Asked under the stores' lock, under
    which every claim records its owner: a running trial without one lost its process between the two."""
    owner = trial.user_attrs.get(OWNER)
    if owner is None:
        return "lost: its process stopped while claiming it"
    if is_alive(owner) is False:
        return f"lost: its process (pid {owner['pid']} on {owner['host']}) is gone"
    return None


def fail_lost_trials(
    study: optuna.Study, storage: optuna.storages.BaseStorage, tracker: Tracker | None = None
) -> list[FrozenTrial]:
    """Fail the study's running trials whose process is gone, and enqueue each one's retry; returns them failed.
    A lost trial that never recorded its MLflow run (killed right after creating it) gets it from the run's tags."""
    study_id = storage.get_study_id_from_name(study.study_name)
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = lost_reason(trial)
        if reason is None:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            if tracker is not None and "mlflow_run_id" not in trial.user_attrs:
                runs = trial_runs(tracker, study.study_name, trial.number)
                if runs:
                    storage.set_trial_user_attr(trial_id, "mlflow_run_id", runs[0])
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
    """The MLflow runs tagged as trial `number` of the study, oldest first."""
    runs = tracker.search(f"tags.`optuna.study` = '{study_name}' and tags.`optuna.trial` = '{number}'")
    return [r.info.run_id for r in sorted(runs, key=lambda r: r.info.start_time)]


REMOTE_CLAIM_SECONDS = 3600  # a final fit claimed by a process on another host is taken to be lost after this long


def final_fit_running(record: dict) -> bool:
    """Whether a final fit's claim (study attr FINAL) is held by a process that still runs it."""
    if record.get("state") != "RUNNING":
        return False
    alive = is_alive(record.get("owner", {}))
    if alive is None:  # another host: trust the claim for a while
        return time.time() - record.get("since", 0) <= REMOTE_CLAIM_SECONDS
    return alive
