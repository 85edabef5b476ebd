"""What a process does as it leaves a study: its lost trials and their runs settled under the lock, and, when it is
the last one out, the study's final fit and the parent's summary (or the parent ended INTERRUPTED after a stop).

Presence (cfexp.search.presence) says who is still in a study; reconciliation (cfexp.search.reconcile) makes the
runs agree with Optuna. The parent run shows RUNNING only while a process works in the study (`working`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from cfexp.search import final_run, presence, reconcile, recovery
from cfexp.search.study_summary import DONE, StudyOutcome, log_best_model, summarise

if TYPE_CHECKING:
    from cfexp.search.sweep import Sweep
    from cfexp.track import Tracker


def working(tracker: Tracker, outcome: StudyOutcome) -> None:
    """The parent shows RUNNING while this process works in the study (claims a trial, makes its final fit)."""
    if not outcome.working:
        tracker.reopen(outcome.parent_id)
        outcome.working = True


def leave(sweep: Sweep, outcome: StudyOutcome, interrupted: bool = False) -> None:
    """Log this process's best model if it is the study's best; the last process out makes the study's final
    fit and summarises the parent, when this or an earlier sweep left work to do."""
    study, tracker = outcome.study, sweep.tracker
    with sweep.store.lock():
        if recovery.fail_lost_trials(study, sweep.store.storage, tracker):
            reconcile.end_runs(study, tracker, outcome.parent_id)
        last_out = presence.leave(study) and not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if last_out:
            reconcile.end_runs(study, tracker, outcome.parent_id)
    if interrupted:
        if last_out and outcome.working:
            tracker.end_run(outcome.parent_id, "INTERRUPTED")
        return
    if sweep.holdout is None:  # else the final run holds the study's model
        log_best_model(outcome, tracker, last_out)
    if last_out and unfinished(sweep, outcome):
        working(tracker, outcome)
        started = time.perf_counter()
        record = final_run.make_final(outcome, tracker, sweep.holdout, sweep.store.lock, sweep.key)
        if record:
            outcome.final_seconds = time.perf_counter() - started
            if sweep.progress:
                sweep.progress.on_final(outcome.study.study_name, record, outcome.final_seconds)
        summarise(outcome, tracker)


def unfinished(sweep: Sweep, outcome: StudyOutcome) -> bool:
    """Whether the study has work left for its last process: trials this process ran, a final fit to make, or
    a summary an earlier sweep did not finish."""
    study, best = outcome.study, outcome.best()
    if outcome.working or not study.user_attrs.get(DONE):
        return True
    if sweep.holdout is not None and best is not None and final_run.needs_final(study, best):
        return True
    return sweep.tracker.get_run(outcome.parent_id).info.status == "RUNNING"
