"""What a user checks after a sweep, read through Optuna's and MLflow's own APIs: do the two stores agree?

Each finding is one line; an empty list means: no RUNNING trial or run, every study's budget spent exactly, one
parent per study and FINISHED, every COMPLETE trial with a FINISHED run holding its metrics, every run of a trial
that exists and points back at it with the same state, every recorded final model's run FINISHED, and at most one
champion in the registry.
"""

from __future__ import annotations

import optuna
from mlflow import MlflowClient
from optuna.trial import FrozenTrial, TrialState

from cfexp import keys
from cfexp.search.reconcile import BUDGET
from cfexp.search.recovery import FINAL, is_failure


def inconsistencies(
    storage: optuna.storages.BaseStorage, client: MlflowClient, experiment: str, budgets: dict[str, int]
) -> list[str]:
    """`budgets`: each study's name (`<experiment>/<study>`) and the trials it must hold COMPLETE or PRUNED (fewer
    only where the study stopped at its `max_failures`)."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return [f"no MLflow experiment {experiment}"]
    runs = client.search_runs([found.experiment_id], max_results=50000)
    problems = [f"run {r.info.run_name} ({r.info.run_id}) is RUNNING" for r in runs if r.info.status == "RUNNING"]
    for name, budget in budgets.items():
        problems += _study(storage, runs, name, budget)
    models = client.search_registered_models(f"name LIKE '{experiment}.%'")
    champions = [m.name for m in models if "champion" in (m.aliases or {})]
    if len(champions) > 1:
        problems.append(f"{len(champions)} models carry the alias champion: {champions}")
    return problems


def _study(storage, runs, name: str, budget: int) -> list[str]:
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())
    except KeyError:
        return [f"study {name} does not exist"]
    trials = study.get_trials(deepcopy=False)
    problems = [f"{name} trial {t.number} is RUNNING" for t in trials if t.state == TrialState.RUNNING]
    spent = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    capped = sum(map(is_failure, trials)) >= (study.user_attrs.get(BUDGET) or {}).get("max_failures", budget + 1)
    if spent > budget or (spent < budget and not capped):
        problems.append(f"{name} holds {spent} complete or pruned trials, its budget is {budget}")
    parents = [r for r in runs if r.data.tags.get(keys.ROLE) == "study" and r.data.tags.get("optuna.study") == name]
    if len(parents) != 1:
        return [*problems, f"{name} has {len(parents)} parent runs"]
    parent = parents[0]
    if parent.info.status != "FINISHED":
        problems.append(f"{name}'s parent run is {parent.info.status}")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    by_id = {r.info.run_id: r for r in children}
    by_number = {t.number: t for t in trials}
    for run in children:
        if run.data.tags.get(keys.ROLE) != "final":
            problems += _trial_run(name, run, by_number.get(int(run.data.tags.get("optuna.trial", -1))))
    for trial in trials:
        if trial.state == TrialState.COMPLETE:
            problems += _complete(name, trial, by_id.get(trial.user_attrs.get("mlflow_run_id", "")))
    final = study.user_attrs.get(FINAL) or {}
    if final.get("state") == "COMPLETE":
        run = by_id.get(final.get("run_id", ""))
        if run is None or run.info.status != "FINISHED":
            problems.append(f"{name}'s final run {final.get('run_id')} is {run.info.status if run else 'missing'}")
    return problems


def _trial_run(name: str, run, trial: FrozenTrial | None) -> list[str]:
    label = f"{name} run {run.info.run_name} ({run.info.run_id})"
    if trial is None:
        return [f"{label} has no trial"]
    if trial.user_attrs.get("mlflow_run_id") != run.info.run_id:
        return [f"{label}: trial {trial.number} names run {trial.user_attrs.get('mlflow_run_id')}"]
    expected = "FAIL" if trial.state == TrialState.FAIL else trial.state.name
    if run.data.tags.get("optuna.state") != expected:
        return [f"{label} says {run.data.tags.get('optuna.state')}, its trial is {trial.state.name}"]
    return []


def _complete(name: str, trial: FrozenTrial, run) -> list[str]:
    label = f"{name} trial {trial.number} (COMPLETE)"
    if run is None:
        return [f"{label} has no run"]
    if run.info.status != "FINISHED":
        return [f"{label}: its run is {run.info.status}"]
    if "best_val_loss" not in run.data.metrics and not any("_at_" in k for k in run.data.metrics):
        return [f"{label}: its run holds no final metrics"]
    return []
