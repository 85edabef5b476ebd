"""Everything Optuna: one study per (experiment, variant), its trials claimed one at a time from a shared budget.

Several processes may run the same sweep on the same stores. Each claims a trial under the stores' lock: the
study's complete, pruned and running trials must stay within its budget, so that N processes together run the
budget once, and no more. A trial whose process dies is failed and retried by the next process that opens the study
(`recovery`). The study's parent MLflow run is summarised and finished by whichever process leaves the study last.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import optuna
from optuna.storages._heartbeat import get_heartbeat_thread  # Optuna's own heartbeat, as study.optimize runs it
from optuna.trial import TrialState

from cfexp import keys
from cfexp.config.sweep_table import StudySpec, SweepConfig
from cfexp.data import key as data_key
from cfexp.data.key import DataKey
from cfexp.errors import UserError
from cfexp.search import leaving, presence, reconcile, recovery, samplers
from cfexp.search.objective import Objective, TrialFailed, TrialLost
from cfexp.search.space import search_space
from cfexp.search.study_store import StoreDown, StudyStore
from cfexp.search.study_summary import StudyOutcome
from cfexp.system import faults
from cfexp.track import Tracker, TrackingError
from cfexp.variants import refit, runner

optuna.logging.set_verbosity(optuna.logging.WARNING)
TRACKING_FAILURES_IN_A_ROW = 3  # then the tracking store is taken to be down, and the sweep stops
CLAIMED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
OBJECTIVE = keys.OBJECTIVE  # study user attr: the metric its values are (val_loss, or e.g. ndcg_at_10)


class TrackingDown(TrackingError):
    """The tracking store failed trial after trial: the sweep stops (what was logged before stays)."""


def make_pruner(sweep: SweepConfig, epochs: int) -> optuna.pruners.BasePruner:
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=sweep.pruner_startup_trials, n_warmup_steps=sweep.pruner_warmup_epochs
        )
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    return optuna.pruners.NopPruner()


def make_study(
    sweep: SweepConfig, name: str, epochs: int, store, objective: str = "val_loss", key: DataKey | None = None
) -> optuna.Study:
    """Create or load the study; one created for another objective, or on other data, is refused (its values
    would not compare). The sampler is set per trial, when one is claimed."""
    pruner = make_pruner(sweep, epochs)
    direction = "minimize" if objective == "val_loss" else "maximize"
    seed = samplers.study_seed(sweep.seed, name)
    study = optuna.create_study(
        study_name=name,
        storage=store,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=pruner,
        direction=direction,
        load_if_exists=True,
    )
    was = study.user_attrs.get(OBJECTIVE, "val_loss" if study.trials else None)
    if key is not None and data_key.check_study(name, study.user_attrs.get(data_key.ATTR), key, bool(study.trials)):
        study.set_user_attr(data_key.ATTR, key.as_dict())
    if was is None:
        study.set_user_attr(OBJECTIVE, objective)
        study.set_metric_names([objective])  # names the value in optuna-dashboard's plots
    elif was != objective:
        raise UserError(
            f"study {name} tuned {was}, and its objective is now {objective}: its trials would not compare; "
            "give the experiment another name, or delete the study"
        )
    return study


def study_name(experiment: str, spec: StudySpec) -> str:
    """The study of `spec` in `experiment` (cfexp.keys.study_name)."""
    return keys.study_name(experiment, spec.name)


def existing_studies(experiment, storage, key: DataKey) -> list[tuple[StudySpec, optuna.Study]]:
    """The experiment's studies that exist, each checked to hold these data: one of other data is refused in one
    line (cfexp.data.key), before anything is written."""
    found = []
    for spec in experiment.sweep.studies:
        name = study_name(experiment.name, spec)
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            continue
        data_key.check_study(name, study.user_attrs.get(data_key.ATTR), key, bool(study.trials))
        found.append((spec, study))
    return found


class Sweep:
    """Runs every study of an experiment's [sweep], each trial a nested MLflow run under the study's parent.

    `cpu` (a cpu_share.CpuShare) sets this process's torch threads before each trial."""

    def __init__(
        self,
        experiment,
        data: runner.SplitTensors,
        tracker: Tracker,
        store: StudyStore,
        progress=None,
        cpu=None,
        key: DataKey | None = None,
        holdout: refit.Holdout | None = None,
    ):
        self.experiment, self.data, self.tracker, self.store = experiment, data, tracker, store
        self.key, self.holdout = key, holdout  # the holdout reaches the final fit only: no trial sees it
        self.config: SweepConfig = experiment.sweep
        self.progress = progress
        self.cpu = cpu
        self.tracking_failures = 0
        self.outcomes: dict[str, StudyOutcome] = {}

    def run(
        self, trials: int | None = None, timeout: float | None = None, studies: Iterable[StudySpec] | None = None
    ) -> list[StudyOutcome]:
        """Run `studies` (default: every study of the sweep); `trials` (from --trials) overrides every budget."""
        chosen = self.config.studies if studies is None else studies
        return [self.run_study(spec, self.budget(spec, trials), timeout) for spec in chosen]

    def budget(self, spec: StudySpec, trials: int | None = None) -> int:
        return trials or spec.trials or self.config.trials

    def run_study(self, spec: StudySpec, budget: int, timeout: float | None) -> StudyOutcome:
        started = time.monotonic()
        max_failures = spec.max_failures or self.config.max_failures or budget
        outcome = self.open_study(spec, budget, max_failures)
        space = search_space(spec)
        claimed = len(outcome.study.get_trials(deepcopy=False, states=CLAIMED))
        if self.progress:
            self.progress.start_study(outcome.study.study_name, max(budget - claimed, 0), claimed)
        limit = timeout or self.config.timeout or None
        try:
            while limit is None or time.monotonic() - started < limit:
                trial = self.claim(outcome, budget, max_failures)
                if trial is None:
                    break
                self._run_trial(outcome, trial, space)
            self._leave(outcome)
        except StoreDown:
            raise  # nothing more can be written; the next command reconciles
        except BaseException:
            self._leave(outcome, interrupted=True)
            raise
        outcome.seconds = time.monotonic() - started
        self.outcomes[spec.name] = outcome
        return outcome

    def outcomes_of_all(self) -> list[StudyOutcome]:
        """Every study of the sweep as the stores hold it now, including those other workers ran."""
        found = []
        for spec in self.config.studies:
            if spec.name in self.outcomes:
                found.append(self.outcomes[spec.name])
                continue
            name = self.study_name(spec)
            study = make_study(self.config, name, spec.run.epochs, self.store.storage, spec.objective, self.key)
            parent = self.tracker.find_parent(name) or ""
            found.append(StudyOutcome(spec, study, parent, self.objective(spec, name, parent)))
        return found

    def open_study(self, spec: StudySpec, budget: int, max_failures: int) -> StudyOutcome:
        """Load or create the study and its parent run, under the lock; reconcile what earlier processes left, and
        enter the study (cfexp.search.presence)."""
        name = self.study_name(spec)
        with self.store.lock():
            study = make_study(self.config, name, spec.run.epochs, self.store.storage, spec.objective, self.key)
            if not study.trials:
                for params in spec.enqueue:
                    study.enqueue_trial(params)
            parent = self.tracker.find_parent(name) or self.tracker.start_run(
                spec.name,
                {"variant": spec.run.variant, "init": spec.run.init, **(self.key.params() if self.key else {})},
                {keys.EXPERIMENT: self.experiment.name, keys.VARIANT: spec.run.variant, "optuna.study": name}
                | {keys.ROLE: "study", keys.OBJECTIVE: spec.objective}
                | ({data_key.ATTR: self.key.key, "dataset.digest": self.key.digest} if self.key else {}),
            )
            if study.user_attrs.get(reconcile.BUDGET) != {"trials": budget, "max_failures": max_failures}:
                study.set_user_attr(reconcile.BUDGET, {"trials": budget, "max_failures": max_failures})
            reconcile.reconcile_study(study, self.store.storage, self.tracker, parent, parent=False)
            presence.enter(study)
        return StudyOutcome(spec, study, parent, self.objective(spec, name, parent))

    def study_name(self, spec: StudySpec) -> str:
        return study_name(self.experiment.name, spec)

    def objective(self, spec: StudySpec, name: str, parent: str) -> Objective:
        key = self.key.key if self.key else ""
        objective = Objective(spec, name, self.data, self.tracker, parent, self.experiment.eval.per_epoch, key)
        objective.keep_best = self.holdout is None
        return objective

    def claim(self, outcome: StudyOutcome, budget: int, max_failures: int) -> optuna.Trial | None:
        """The next trial of this process, or None when the budget is claimed (or too many trials failed)."""
        study = outcome.study
        with self.store.lock():
            if recovery.fail_lost_trials(study, self.store.storage, self.tracker):
                reconcile.end_runs(study, self.tracker, outcome.parent_id)
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in CLAIMED for t in trials) >= budget:
                return None
            if sum(recovery.is_failure(t) for t in trials) >= max_failures:
                if self.progress:
                    self.progress.note(f"{study.study_name}: stopped after {max_failures} failed trials")
                return None
            presence.enter(study)  # again: a sign of life for readers on other hosts
            kind = self.config.sampler
            startup = samplers.startup_trials(budget, self.config.startup_trials)
            done = samplers.finished(kind, trials)
            seed = samplers.study_seed(self.config.seed, study.study_name)
            study.sampler = samplers.make_sampler(kind, seed, seed + len(trials), startup, done)
            with warnings.catch_warnings():
                # Optuna warns that heartbeats are meant for study.optimize; this loop runs Optuna's heartbeat
                # thread around each trial just as optimize does (see _heartbeat).
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
            faults.point("claim")
            recovery.own(trial)
            if self.key is not None:
                trial.set_user_attr(data_key.ATTR, self.key.key)  # which rows the trial was fitted and judged on
            trial.set_user_attr(
                samplers.SAMPLED, samplers.sampled_by(recovery.frozen(study, trial), kind, startup, done)
            )
        self._working(outcome)
        return trial

    def _run_trial(self, outcome: StudyOutcome, trial: optuna.Trial, space) -> None:
        """Run the trial, tell Optuna its outcome (the commit point), and only then end its MLflow run."""
        study = outcome.study
        if self.cpu is not None:
            self.cpu.apply()
        try:
            with _heartbeat(trial, self.store.storage):
                value = outcome.objective(study, trial, space, self.progress)
            frozen = study.tell(trial, value)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
        except TrialFailed:
            frozen = study.tell(trial, state=TrialState.FAIL)
        except TrialLost as lost:
            recovery.give_up(study, trial, str(lost))
            self.tracking_failures += 1
            if self.tracking_failures >= TRACKING_FAILURES_IN_A_ROW:
                raise TrackingDown(f"{self.tracking_failures} trials in a row could not be tracked ({lost})") from None
            if self.progress:
                self.progress.on_trial(study, recovery.frozen(study, trial))
            return
        except StoreDown:
            raise
        except BaseException as exc:
            recovery.give_up(study, trial, "interrupted" if isinstance(exc, KeyboardInterrupt) else repr(exc))
            raise
        self.tracking_failures = 0
        faults.point("told")
        if frozen.user_attrs.get("mlflow_run_id"):
            self.tracker.end_run(frozen.user_attrs["mlflow_run_id"], frozen.state.name)
        if self.progress:
            self.progress.on_trial(study, frozen)

    def _working(self, outcome: StudyOutcome) -> None:
        leaving.working(self.tracker, outcome)

    def _leave(self, outcome: StudyOutcome, interrupted: bool = False) -> None:
        leaving.leave(self, outcome, interrupted)


def _heartbeat(trial: optuna.Trial, storage) -> AbstractContextManager:
    """Optuna's heartbeat thread for a running trial, where the storage keeps heartbeats (an RDB)."""
    if isinstance(storage, optuna.storages.RDBStorage) and storage.heartbeat_interval:
        return get_heartbeat_thread(trial._trial_id, storage)
    return nullcontext()
