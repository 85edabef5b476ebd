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


def default_model(experiment: str, job: str = "ranking") -> tuple[str, str]:
    """The experiment's champion for a job: its URI, and which it is, why, what data it was fitted on and how it
    scored (said, never silent). Recommendations (`ranking`) come from the ranking champion, the highest val NDCG@k
    among the studies tuned for it, or from the rating champion where no study tuned a ranking; ratings (`rating`)
    from the rating champion, the lowest val MSE.

    Each experiment's champions are of its own data: a sweep on other data is an experiment of its own
    (`<name>-<data key>`, cfexp.data.key), so `--experiment` names whose champion this is."""
    from mlflow.exceptions import MlflowException

    from cfexp.track import model_registry, store

    why = {
        model_registry.RANKING_CHAMPION: "the ranking champion: the highest validation NDCG among the ranking studies",
        model_registry.CHAMPION: "the rating champion: the lowest validation MSE",
    }
    aliases = (
        [model_registry.CHAMPION] if job == "rating" else [model_registry.RANKING_CHAMPION, model_registry.CHAMPION]
    )
    try:
        client = store.open_client(store.tracking_uri())
        found = [(alias, model_registry.champion(client, experiment, alias)) for alias in aliases]
    except MlflowException as exc:
        raise UserError(f"cannot read the model registry: {first_line(exc)}") from None
    alias, version = next(((a, v) for a, v in found if v is not None), (None, None))
    if version is None:
        raise UserError(f"no model of experiment {experiment!r} has the alias champion: run cfexp sweep first")
    reason = why[alias] + (
        "; no study tuned a ranking" if job == "ranking" and alias == model_registry.CHAMPION else ""
    )
    return f"models:/{version.name}@{alias}", f"{reason}; {model_registry.provenance(version)}"
