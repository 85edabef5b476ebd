"""The MLflow Model Registry: each study's best model as `<experiment>.<study>`, and the experiment's `champion`.

A study's registered model gets a new version only when a sweep found a better trial than its latest version's;
a rerun that finds nothing better registers nothing; a version of other data (another `cfexp.data`) is no
contest. A version is the study's final model (its best trial refit on train + validation); its tags and
description give the test figures first (reported), then the validation ones (selection), the variant, the data
and the git commit. Two aliases name the experiment's champions, each chosen on validation (never on test): the
rating champion, `champion` (`models:/<experiment>.<study>@champion`, the lowest val MSE), and the ranking champion,
`ranking_champion` (the highest val NDCG@k among the studies tuned for it). When another study takes the lead, its
alias moves.
"""

from __future__ import annotations

import math

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from cfexp import keys
from cfexp.system import faults

CHAMPION = "champion"  # the rating champion: the lowest val MSE
RANKING_CHAMPION = "ranking_champion"  # the highest val NDCG@k among the studies that tune it
DATA_TAG = keys.DATA  # the short key of the data a version was fitted and scored on


def model_name(experiment: str, study: str) -> str:
    return f"{experiment}.{study}"


def latest_version(client: MlflowClient, name: str) -> ModelVersion | None:
    versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    return versions[0] if versions else None


def register_if_better(
    client: MlflowClient, name: str, run_id: str, model_id: str, value: float, tags: dict
) -> ModelVersion | None:
    """Register the run's logged model (`models:/<model_id>`) as a new version of `name`, unless its latest version
    is as good or is that run. `tags[keys.OBJECTIVE]` says which way is better (val_loss: lower)."""
    latest = latest_version(client, name)
    if latest is not None and latest.tags.get(DATA_TAG) == str(tags.get(DATA_TAG)):  # else: other data, no contest
        if latest.run_id == run_id:
            return None
        before = float(latest.tags.get(keys.VALUE, "nan"))
        lower = tags.get(keys.OBJECTIVE, "val_loss") == "val_loss"
        if math.isfinite(before) and (value >= before if lower else value <= before):
            return None
    try:
        client.create_registered_model(name, description=f"cfexp: the best model of study {tags[keys.STUDY]}")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    faults.point("registration")
    strings = {k: str(v) for k, v in {**tags, keys.VALUE: value}.items() if v is not None}
    # MLflow 3 keeps a logged model apart from its run's artifacts: the version's source is the model itself
    return client.create_model_version(
        name, f"models:/{model_id}", run_id=run_id, tags=strings, description=_description(strings), model_id=model_id
    )


def _description(tags: dict) -> str:
    def value(key: str) -> str | None:
        return tags[key] if tags.get(key) not in (None, "", "nan") else None

    labels = {keys.TEST_MSE: "test MSE", keys.TEST_NDCG: "test NDCG"}
    reported = [f"{label} {value(k)}" for k, label in labels.items() if value(k)]
    objective = str(tags.get(keys.OBJECTIVE, "val_loss"))
    selected = "val MSE" if objective == "val_loss" else f"val {objective.replace('_at_', '@')}"
    selected += f" {tags.get(keys.VALUE)}"
    if value(keys.VAL_MSE) and objective != "val_loss":
        selected += f", val MSE {value(keys.VAL_MSE)}"
    fitted = "refit on train + validation" if tags.get(keys.ROLE) == "final" else "trained on train"
    return (
        f"Trial {tags.get(keys.TRIAL)} of study {tags.get(keys.STUDY)} (variant {tags.get(keys.VARIANT)}), "
        f"{fitted} in MLflow run {tags.get(keys.RUN_ID)}. "
        + (f"Reported on the test split: {', '.join(reported)}. " if reported else "")
        + f"Selected on validation: {selected}. "
        + f"Data {tags.get(DATA_TAG)} (dataset digest {tags.get('dataset.digest')}), "
        + f"git commit {tags.get('git.commit')}."
    )


def crown(client: MlflowClient, experiment: str, study: str, alias: str = CHAMPION) -> ModelVersion | None:
    """Give the latest version of `<experiment>.<study>` the alias, and take it from the experiment's other
    registered models."""
    name = model_name(experiment, study)
    latest = latest_version(client, name)
    if latest is None:
        return None
    for other in client.search_registered_models(f"name LIKE '{experiment}.%'"):
        if other.name != name and alias in (other.aliases or {}):
            client.delete_registered_model_alias(other.name, alias)
            faults.point("registration")
    if str((client.get_registered_model(name).aliases or {}).get(alias)) != str(latest.version):
        client.set_registered_model_alias(name, alias, latest.version)
    return latest


def champion_uri(client: MlflowClient, experiment: str, alias: str = CHAMPION) -> str | None:
    """`models:/<experiment>.<study>@<alias>`, or None when no model of the experiment has the alias."""
    found = champion(client, experiment, alias)
    return f"models:/{found.name}@{alias}" if found else None


def champion(client: MlflowClient, experiment: str, alias: str = CHAMPION) -> ModelVersion | None:
    """The model version of the experiment that has the alias (`champion`, or `ranking_champion`), if one has."""
    for model in client.search_registered_models(f"name LIKE '{experiment}.%'"):
        if alias in (model.aliases or {}):
            return client.get_model_version_by_alias(model.name, alias)
    return None


def provenance(version: ModelVersion) -> str:
    """What a version was fitted on and how it scored, for a reader who picks it: data, test and val figures."""
    tags = version.tags or {}
    parts = [f"data {tags.get(DATA_TAG, 'unrecorded')} (dataset digest {tags.get('dataset.digest', '?')})"]
    for key, label in ((keys.TEST_MSE, "test MSE"), (keys.TEST_NDCG, "test NDCG"), (keys.VAL_MSE, "val MSE")):
        if tags.get(key) not in (None, "", "nan", "None"):
            parts.append(f"{label} {float(tags[key]):.4f}")
    return ", ".join(parts)
