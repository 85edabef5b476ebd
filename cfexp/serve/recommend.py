"""A logged or registered model loaded back (default: an experiment's champion), to recommend from."""

from __future__ import annotations

import warnings

from cfexp.errors import UserError
from cfexp.system.redact import first_line

DEFAULT_EXPERIMENT = "variants"  # experiments/variants.toml, what `make sweep` tunes


def load_recommender(uri: str):
    """The cfexp.serve.pyfunc.Recommender behind a model URI (models:/..., runs:/...)."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from cfexp.serve.pyfunc import Recommender
    from cfexp.track import store

    mlflow.set_tracking_uri(store.tracking_uri())  # models:/ resolves through the project's store, as cfexp wrote it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise UserError(f"no model at {uri}: {first_line(exc)}") from None
    if not isinstance(model, Recommender):
        raise UserError(f"{uri} is not a model cfexp logged (run cfexp sweep again with this version)")
    return model


def default_model(experiment: str) -> tuple[str, str]:
    """The experiment's champion: its URI, and what data it was fitted on and how it scored (said, never silent).

    Each experiment's champion is of its own data: a sweep on other data is an experiment of its own
    (`<name>-<data key>`, cfexp.data.key), so `--experiment` names whose champion this is."""
    from mlflow.exceptions import MlflowException

    from cfexp.track import model_registry, store

    try:
        version = model_registry.champion(store.open_client(store.tracking_uri()), experiment)
    except MlflowException as exc:
        raise UserError(f"cannot read the model registry: {first_line(exc)}") from None
    if version is None:
        raise UserError(f"no model of experiment {experiment!r} has the alias champion: run cfexp sweep first")
    return f"models:/{version.name}@{model_registry.CHAMPION}", model_registry.provenance(version)
