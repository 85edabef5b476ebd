"""`cfexp recommend`: a user's top-k unrated movies from a logged or registered model (default: the champion)."""

from __future__ import annotations

import argparse
import warnings

import pandas as pd

from cfexp.errors import UserError
from cfexp.redact import first_line

DEFAULT_EXPERIMENT = "variants"  # experiments/variants.toml, what `make sweep` tunes


def load_recommender(uri: str):
    """The cfexp.served.Recommender behind a model URI (models:/..., runs:/...)."""
    import mlflow
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from cfexp.served import Recommender
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
    (`<name>-<data key>`, cfexp.data_key), so `--experiment` names whose champion this is."""
    from mlflow.exceptions import MlflowException

    from cfexp.track import registry, store

    try:
        version = registry.champion(store.open_client(store.tracking_uri()), experiment)
    except MlflowException as exc:
        raise UserError(f"cannot read the model registry: {first_line(exc)}") from None
    if version is None:
        raise UserError(f"no model of experiment {experiment!r} has the alias champion: run cfexp sweep first")
    return f"models:/{version.name}@{registry.CHAMPION}", registry.provenance(version)


def main(args: argparse.Namespace) -> int:
    from cfexp.served import UnknownUser

    if args.k < 1:
        raise UserError(f"-k must be >= 1, got {args.k}")
    if not args.model:
        _reconcile(args.experiment, args.storage)
    uri, provenance = (args.model, "") if args.model else default_model(args.experiment)
    model = load_recommender(uri)
    try:
        table = model.top(args.user, args.k)
    except UnknownUser:
        ids = model.predictor.user_ids
        raise UserError(
            f"no such user {args.user} in the training data of {uri}; use a known id ({int(ids.min())} to "
            f"{int(ids.max())}, e.g. {int(ids[0])})"
        ) from None
    fitted = f" ({provenance})" if provenance else ""
    print(f"top {len(table)} for user {args.user} from {uri}{fitted}, leaving out the movies they rated:")
    shown = table[["rank", "movieId", "score", "title"]].rename(columns={"score": "predicted"})
    with pd.option_context("display.max_colwidth", 60, "display.width", 120):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _reconcile(experiment: str, storage: str | None) -> None:
    """The experiment's stores made to agree before its champion is read (cfexp.reconcile)."""
    import os

    from cfexp import reconcile, study_store

    if storage or os.environ.get("CFEXP_STORAGE") or study_store.DEFAULT_JOURNAL.exists():
        reconcile.on_open(study_store.open_store(storage), experiment)
