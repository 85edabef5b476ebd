"""Both stores brought to agree whenever a command opens a study: Optuna's record is the truth, MLflow follows it.

A trial is written in one order: claimed in Optuna (with its owner); its MLflow run created and filled (params,
epochs, final metrics, artifacts, all waited for); Optuna told the outcome, the commit point; and only then the
run's `optuna.state` tag and its end. A study's parent run is summarised, the study marked done in Optuna, and then
the parent ended. So wherever a kill lands, what it leaves is one of these, and each is resolved here:

- a RUNNING trial whose process is gone: failed and retried with the same params (cfexp.search.recovery);
- a RUNNING run: ended as its trial ended (FINISHED, FAILED, or KILLED with a `cfexp.fail_reason`), or KILLED when
  its trial does not exist or holds another run;
- a RUNNING parent that no process works in (cfexp.search.presence): summarised and ended when its budget is spent, else
  ended KILLED as INTERRUPTED.

Nothing a live process still owns is touched: a trial's run while its owner runs, a final fit's run while its claim
holds, a parent while a process is in its study. The caller holds the stores' lock for each study.
"""

from __future__ import annotations

import datetime
import sys
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from cfexp import keys
from cfexp.search import presence, recovery
from cfexp.search.recovery import FAIL_REASON, FINAL, FINAL_ROLE, LOST, OWNER
from cfexp.search.study_store import GRACE_SECONDS, StudyStore
from cfexp.search.study_summary import DONE, summarise_parent
from cfexp.system.processes import is_alive
from cfexp.track import Tracker

BUDGET = keys.BUDGET  # study user attr: {trials, max_failures} of the sweep that last opened it
ENDED_BY = {keys.ENDED_BY: "reconcile"}  # on a run that a later command ended, not its own process


@dataclass
class Reconciled:
    trials: int = 0  # lost trials failed (and queued again)
    runs: int = 0  # trial and final runs ended as Optuna holds them
    parents: int = 0  # parents summarised or ended as interrupted

    def __add__(self, other: Reconciled) -> Reconciled:
        return Reconciled(self.trials + other.trials, self.runs + other.runs, self.parents + other.parents)

    def __bool__(self) -> bool:
        return bool(self.trials or self.runs or self.parents)

    def sentence(self) -> str:
        parts = [
            f"{_count(self.trials, 'trial')} whose process was gone failed and queued again" if self.trials else "",
            f"{_count(self.runs, 'run')} ended as Optuna holds them" if self.runs else "",
            f"{_count(self.parents, 'study parent run')} ended" if self.parents else "",
        ]
        return "reconciled the stores after a stopped process: " + "; ".join(p for p in parts if p)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def reconcile_experiment(store: StudyStore, tracker: Tracker, experiment: str) -> Reconciled:
    """Reconcile every study of the experiment (`<experiment>/<study>`) in the store, each under the lock."""
    total = Reconciled()
    for name in study_names(store, experiment):
        with store.lock():
            study = optuna.load_study(study_name=name, storage=store.storage, sampler=optuna.samplers.RandomSampler())
            total += reconcile_study(study, store.storage, tracker, tracker.find_parent(name))
    tracker.flush()
    return total


def study_names(store: StudyStore, experiment: str) -> list[str]:
    if store.missing:
        return []
    return [n for n in optuna.get_all_study_names(store.storage) if n.startswith(keys.study_name(experiment, ""))]


def on_open(store: StudyStore, experiment: str, tracker: Tracker | None = None) -> None:
    """What evaluate, report and recommend do as they open an experiment's stores: reconcile them, and say so."""
    if not study_names(store, experiment):
        return
    tracker = tracker or Tracker(experiment)
    reconciled = reconcile_experiment(store, tracker, experiment)
    if reconciled:
        print(f"cfexp: {reconciled.sentence()}", file=sys.stderr, flush=True)


def reconcile_study(
    study: optuna.Study, storage, tracker: Tracker, parent_id: str | None, parent: bool = True
) -> Reconciled:
    """Lost trials, then RUNNING runs, then (when `parent`) the study's parent run."""
    done = Reconciled(trials=len(recovery.fail_lost_trials(study, storage, tracker)))
    if parent_id:
        done.runs = end_runs(study, tracker, parent_id)
        done.parents = int(parent and end_parent(study, tracker, parent_id))
    return done


def end_runs(study: optuna.Study, tracker: Tracker, parent_id: str) -> int:
    """End the study's RUNNING child runs whose outcome Optuna holds and whose process is done with them."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    final = study.user_attrs.get(FINAL) or {}
    now = datetime.datetime.now()
    ended = 0
    for run in tracker.search(f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'"):
        run_id = run.info.run_id
        if run.data.tags.get(keys.ROLE) == FINAL_ROLE:
            verdict = _final_verdict(run_id, final)
        else:
            verdict = _trial_verdict(run_id, trials.get(int(run.data.tags.get("optuna.trial", -1))), now)
        if verdict is not None:
            state, tags, status = verdict
            tracker.end_run(run_id, state, {**tags, **ENDED_BY}, status)
            ended += 1
    return ended


def _final_verdict(run_id: str, record: dict) -> tuple[str, dict, str | None] | None:
    if record.get("run_id") == run_id and record.get("state") == "COMPLETE":
        return "COMPLETE", {}, None  # recorded in Optuna; killed before the run's own end
    if recovery.final_fit_running(record) and record.get("run_id") in (None, run_id):
        return None  # its process is making it
    return "FAIL", {keys.FAIL_REASON: "lost: its final fit stopped"}, "KILLED"


def _trial_verdict(run_id: str, trial: FrozenTrial | None, now) -> tuple[str, dict, str | None] | None:
    if trial is None or trial.state == TrialState.WAITING:
        return "FAIL", {keys.FAIL_REASON: "lost: its study holds no such trial"}, "KILLED"
    if trial.state == TrialState.RUNNING:
        return None  # its process runs it (a lost one was failed before this)
    holder = trial.user_attrs.get("mlflow_run_id")
    if holder is not None and holder != run_id:
        return "FAIL", {keys.FAIL_REASON: f"lost: trial {trial.number}'s run is {holder}"}, "KILLED"
    if not _writer_gone(trial, now):
        return None  # its process is still ending it
    if trial.state == TrialState.FAIL:
        attrs = trial.user_attrs
        if LOST in attrs or FAIL_REASON not in attrs:
            reason = attrs.get(LOST, "lost: the process running this trial stopped")
            return "FAIL", {keys.FAIL_REASON: reason}, "KILLED"
        return "FAIL", {keys.FAIL_REASON: attrs[FAIL_REASON]}, None
    return trial.state.name, {}, None  # COMPLETE or PRUNED: the run's metrics were written before Optuna was told


def _writer_gone(trial: FrozenTrial, now: datetime.datetime) -> bool:
    alive = is_alive(trial.user_attrs.get(OWNER, {}))
    if alive is None:  # another host: give its tracking thread the grace period to finish
        return bool(trial.datetime_complete) and (now - trial.datetime_complete).total_seconds() > GRACE_SECONDS
    return not alive


def end_parent(study: optuna.Study, tracker: Tracker, parent_id: str) -> bool:
    """A RUNNING parent that nobody works in: summarised and ended if its budget is spent, else INTERRUPTED."""
    if presence.anyone_in(study) or study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        return False
    if recovery.final_fit_running(study.user_attrs.get(FINAL) or {}):
        return False
    if tracker.get_run(parent_id).info.status != "RUNNING":
        return False
    if spent(study):
        summarise_parent(study, tracker, parent_id)
    else:
        tracker.end_run(parent_id, "INTERRUPTED", ENDED_BY)
    return True


def spent(study: optuna.Study) -> bool:
    """Whether the study's budget is claimed (or its failures reached their cap), as its last sweep set them."""
    budget = study.user_attrs.get(BUDGET)
    if budget is None:
        return bool(study.user_attrs.get(DONE))
    trials = study.get_trials(deepcopy=False)
    claimed = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
    return claimed >= budget["trials"] or sum(map(recovery.is_failure, trials)) >= budget["max_failures"]
