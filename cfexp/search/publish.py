"""After a sweep: each finished study's best model into the Model Registry, and the experiment's champion.

It runs once the sweep's processes on this machine are done and their models are logged (their trackers closed),
so that a study's version is its final best, registered once. A study that another process (or machine) still
works on is left to that process, which does the same when it ends; a best model whose own process has not
logged it yet is left to that process too.
"""

from __future__ import annotations

import math

from mlflow import MlflowClient
from optuna.trial import TrialState

from cfexp import keys
from cfexp.data import key as data_key
from cfexp.search.study_summary import StudyOutcome, best_val_loss
from cfexp.track import model_registry
from cfexp.track.tracker import MODEL_TAG


def register_finished(client: MlflowClient, outcomes: list[StudyOutcome], commit: str) -> list[str]:
    """Register the final model of every finished study where its trial beats the latest version on these data;
    the names registered. Without a test split there is no final model, and the best trial's own is registered."""
    registered = []
    for outcome in outcomes:
        best, final = outcome.best(), outcome.final
        key = outcome.study.user_attrs.get(data_key.ATTR, {})
        role = "final"
        untested = not key.get("test_pct") and key.get("split", "random") != "user-last"  # no test split at all
        if best is not None and final is None and untested:
            final = {"trial": best.number, "run_id": best.user_attrs.get("mlflow_run_id")}  # no test split: the trial
            role = "trial"
        if best is None or final is None or final["trial"] != best.number:
            continue
        if outcome.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            continue
        model_id = client.get_run(final["run_id"]).data.tags.get(MODEL_TAG) if final["run_id"] else None
        if not model_id or model_id == "model":  # not logged yet, or by a cfexp before the registry
            continue
        experiment = keys.experiment_of(outcome.study.study_name)
        tags = {
            keys.EXPERIMENT: experiment,
            keys.STUDY: outcome.spec.name,
            keys.ROLE: role,
            keys.VARIANT: outcome.spec.run.variant,
            keys.TRIAL: best.number,
            keys.RUN_ID: final["run_id"],
            keys.TRIAL_RUN_ID: best.user_attrs.get("mlflow_run_id"),
            keys.OBJECTIVE: outcome.spec.objective,
            keys.TEST_MSE: final.get("test_loss"),
            keys.TEST_NDCG: next((v for k, v in final.items() if k.startswith("test_ndcg_at_")), None),
            keys.VAL_MSE: best_val_loss(best),
            "dataset.digest": key.get("digest", outcome.objective.data.ratings.digest),
            data_key.ATTR: outcome.objective.tags.get(data_key.ATTR),
            "git.commit": commit,
        }
        name = model_registry.model_name(experiment, outcome.spec.name)
        if model_registry.register_if_better(client, name, final["run_id"], model_id, best.value, tags) is not None:
            registered.append(name)
    return registered


def crown_champion(client: MlflowClient, experiment: str, rows: list[dict]) -> str | None:
    """The experiment's MSE-best study's latest version gets the alias `champion`, and the study with the highest
    validation NDCG@k among those tuned for it gets `ranking_champion`; the rating champion's registered name."""
    ranked = [row for row in rows if str(row.get("objective", "")).startswith("ndcg_at_") and _number(row)]
    if ranked:
        best = max(ranked, key=lambda row: row["best_value"])["study"].split("/", 1)[1]
        model_registry.crown(client, experiment, best, model_registry.RANKING_CHAMPION)
    rated = [row for row in rows if row.get("best_val_loss") is not None]
    if not rated:
        return None
    study = min(rated, key=lambda row: row["best_val_loss"])["study"].split("/", 1)[1]
    return model_registry.model_name(experiment, study) if model_registry.crown(client, experiment, study) else None


def _number(row: dict) -> bool:
    return isinstance(row.get("best_value"), int | float) and math.isfinite(row["best_value"])
