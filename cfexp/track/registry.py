"""The MLflow Model Registry: each study's best model as `<experiment>.<study>`, and the experiment's `champion`.

A study's registered model gets a new version only when a sweep found a better trial than its latest version's;
a rerun that finds nothing better registers nothing. Each version's tags and description say where it came from
(study, trial, run, objective and value, val MSE, variant, dataset digest, git commit). The experiment's best
rating model, by val MSE, carries the alias `champion` (`models:/<experiment>.<study>@champion`); when another
study takes the lead, the alias moves.
"""

from __future__ import annotations

import math

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

CHAMPION = "champion"


def model_name(experiment: str, study: str) -> str:
    return f"{experiment}.{study}"


def latest_version(client: MlflowClient, name: str) -> ModelVersion | None:
    versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    return versions[0] if versions else None


def register_if_better(
    client: MlflowClient, name: str, run_id: str, model_id: str, value: float, tags: dict
) -> ModelVersion | None:
    """Register the run's logged model (`models:/<model_id>`) as a new version of `name`, unless its latest version
    is as good or is that run. `tags["cfexp.objective"]` says which way is better (val_loss: lower)."""
    latest = latest_version(client, name)
    if latest is not None:
        if latest.run_id == run_id:
            return None
        before = float(latest.tags.get("cfexp.value", "nan"))
        lower = tags.get("cfexp.objective", "val_loss") == "val_loss"
        if math.isfinite(before) and (value >= before if lower else value <= before):
            return None
    try:
        client.create_registered_model(name, description=f"cfexp: the best model of study {tags['cfexp.study']}")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    strings = {k: str(v) for k, v in {**tags, "cfexp.value": value}.items() if v is not None}
    # MLflow 3 keeps a logged model apart from its run's artifacts: the version's source is the model itself
    return client.create_model_version(
        name, f"models:/{model_id}", run_id=run_id, tags=strings, description=_description(strings), model_id=model_id
    )


def _description(tags: dict) -> str:
    mse = tags.get("cfexp.val_mse")
    return (
        f"Trial {tags.get('cfexp.trial')} of study {tags.get('cfexp.study')} (variant {tags.get('cfexp.variant')}), "
        f"MLflow run {tags.get('cfexp.run_id')}: {tags.get('cfexp.objective')} {tags.get('cfexp.value')}"
        + (f", val MSE {mse}" if mse and mse != "nan" else "")
        + f"; dataset digest {tags.get('dataset.digest')}, git commit {tags.get('git.commit')}."
    )


def crown(client: MlflowClient, experiment: str, study: str) -> ModelVersion | None:
    """Give the latest version of `<experiment>.<study>` the alias `champion`, and take it from the experiment's
    other registered models."""
    name = model_name(experiment, study)
    latest = latest_version(client, name)
    if latest is None:
        return None
    for other in client.search_registered_models(f"name LIKE '{experiment}.%'"):
        if other.name != name and CHAMPION in (other.aliases or {}):
            client.delete_registered_model_alias(other.name, CHAMPION)
    if str((client.get_registered_model(name).aliases or {}).get(CHAMPION)) != str(latest.version):
        client.set_registered_model_alias(name, CHAMPION, latest.version)
    return latest


def champion_uri(client: MlflowClient, experiment: str) -> str | None:
    """`models:/<experiment>.<study>@champion`, or None when no model of the experiment has the alias."""
    for model in client.search_registered_models(f"name LIKE '{experiment}.%'"):
        if CHAMPION in (model.aliases or {}):
            return f"models:/{model.name}@{CHAMPION}"
    return None
