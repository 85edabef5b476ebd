"""Local workers: `cfexp sweep EXP --workers N` runs one sweep in N processes on this machine.

The unit of work is a whole study whenever there are at least as many studies as workers: each process takes the
next study nobody holds, longest first (its remaining trials × epochs, or the seconds its finished trials took),
and runs all of it, so that every study's seeded TPE sees the same history as in a serial run and the table is the
serial run's. Taking the next free study as soon as one is done balances the load (longest first, then whoever is
free). With fewer studies than workers, every process goes through every study and they share its trials, as
independent `cfexp sweep` processes on the same stores do. Either way each process takes its share of the cores for
torch (cpu_share: the cores ÷ the sweeps running here, looked at before each trial, so that the last worker at work
takes the cores the others left; the helpers are counted from the moment they start), or one visible GPU through
CUDA_VISIBLE_DEVICES.

This process is worker 0; it starts the others (worker_processes) as `cfexp sweep ... --worker-index I`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from cfexp import keys
from cfexp.config.sweep_table import StudySpec
from cfexp.search.recovery import is_failure
from cfexp.search.study_summary import DONE
from cfexp.search.sweep import CLAIMED, Sweep, make_study
from cfexp.system.processes import is_alive, this_process
from cfexp.variants.registry import get_variant

HOLDER = keys.WORKER  # study user attr: the process that has taken the whole study


@dataclass(frozen=True)
class Plan:
    workers: int
    whole_studies: bool  # else every worker shares every study's trials

    @classmethod
    def for_sweep(cls, studies: int, workers: int) -> Plan:
        return cls(workers, workers > 1 and studies >= workers)


def studies_for(plan: Plan, runner: Sweep, trials: int | None) -> Iterator[StudySpec]:
    """The studies this worker runs, one at a time, as it becomes free."""
    specs = runner.config.studies
    if not plan.whole_studies:
        yield from specs
        return
    taken: set[str] = set()
    while (spec := _take_next(runner, specs, taken, lambda s: runner.budget(s, trials))) is not None:
        taken.add(spec.name)
        yield spec


def _take_next(runner: Sweep, specs, taken: set[str], budget_of) -> StudySpec | None:
    store = runner.store
    me = this_process()
    with store.lock():
        free = []
        for spec in specs:
            if spec.name in taken:
                continue
            name = runner.study_name(spec)
            study = make_study(runner.config, name, spec.run.epochs, store.storage, spec.objective, runner.key)
            holder = study.user_attrs.get(HOLDER)
            if holder and holder != me and is_alive(holder) is not False:
                continue  # another worker runs it (or one on another host, which cannot be checked)
            budget = budget_of(spec)
            if _finished(study, budget, spec.max_failures or runner.config.max_failures or budget):
                continue
            free.append((_remaining_cost(study, spec, budget), spec, study))
        if not free:
            return None
        _, spec, study = max(free, key=lambda item: item[0])
        study.set_user_attr(HOLDER, me)
        return spec


def _finished(study: optuna.Study, budget: int, max_failures: int) -> bool:
    trials = study.get_trials(deepcopy=False)
    if not study.user_attrs.get(DONE):
        return False
    return sum(t.state in CLAIMED for t in trials) >= budget or sum(map(is_failure, trials)) >= max_failures


def _remaining_cost(study: optuna.Study, spec: StudySpec, budget: int) -> float:
    """Seconds still to run, from the study's own finished trials where it has any, else from its trials × epochs
    × its variant's relative epoch cost (0.2 s a lazy-SGD epoch on the lesson's data: only the order matters)."""
    trials = study.get_trials(deepcopy=False)
    remaining = max(budget - sum(t.state in CLAIMED for t in trials), 0)
    done = [t.user_attrs["seconds"] for t in trials if t.state == TrialState.COMPLETE and "seconds" in t.user_attrs]
    per_trial = sum(done) / len(done) if done else spec.run.epochs * 0.2 * get_variant(spec.run.variant).epoch_cost
    return remaining * per_trial
