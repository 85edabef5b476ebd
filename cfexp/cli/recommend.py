"""`cfexp recommend`: a user's top-k unrated movies from a logged or registered model (default: the champion)."""

from __future__ import annotations

import argparse

import pandas as pd

from cfexp.errors import UserError
from cfexp.serve.recommend import default_model, load_recommender


def main(args: argparse.Namespace) -> int:
    from cfexp.serve.pyfunc import UnknownUser

    if args.k < 1:
        raise UserError(f"-k must be >= 1, got {args.k}")
    if not args.model:
        _reconcile(args.experiment, args.storage)
    uri, provenance = (args.model, "") if args.model else default_model(args.experiment)
    model = load_recommender(uri)
    try:
        table = model.top(args.user, args.k)
    except UnknownUser:
        known = model.known_users()
        shown = f"e.g. {', '.join(map(str, known))}" if model.labels is not None else f"{known[0]} to {known[1]}"
        raise UserError(f"no such user {args.user} in the training data of {uri}; use a known id ({shown})") from None
    fitted = f" ({provenance})" if provenance else ""
    print(f"top {len(table)} for user {args.user} from {uri}{fitted}, leaving out the movies they rated:")
    shown = table[["rank", "movieId", "score", "title"]].rename(columns={"score": "predicted"})
    with pd.option_context("display.max_colwidth", 60, "display.width", 120):
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def _reconcile(experiment: str, storage: str | None) -> None:
    """The experiment's stores made to agree before its champion is read (cfexp.search.reconcile)."""
    import os

    from cfexp.search import reconcile, study_store

    if storage or os.environ.get("CFEXP_STORAGE") or study_store.DEFAULT_JOURNAL.exists():
        reconcile.on_open(study_store.open_store(storage), experiment)
