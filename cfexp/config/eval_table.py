"""The `[eval]` table of an experiment: the ranking protocol (k, relevance), per-epoch ranking, and the folds of
`cfexp evaluate`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cfexp.errors import UserError

EVAL_DEFAULTS: dict[str, Any] = {
    "k": 10,  # the cut-off of NDCG@k, Recall@k, HR@k and MAP@k
    "relevance": 4.0,  # a validation rating at least this makes the movie relevant
    "per_epoch": False,  # also rank after every epoch (always, for a study whose objective is a ranking metric)
    "folds": 5,  # cfexp evaluate: K-fold cross-validation of each study's best configuration
    "seed": 42,  # the folds' shuffle
}
RANKING_METRICS = ("ndcg", "recall", "hr", "map")


@dataclass(frozen=True)
class EvalConfig:
    k: int = 10
    relevance: float = 4.0
    per_epoch: bool = False
    folds: int = 5
    seed: int = 42


def parse_eval(raw: Any, check_keys, where: str) -> EvalConfig:
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [eval] must be a table")
    check_keys(raw, set(EVAL_DEFAULTS), f"{where} [eval]")
    settings = {**EVAL_DEFAULTS, **raw}
    for key, low in (("k", 1), ("folds", 2), ("seed", 0)):
        if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < low:
            raise UserError(f"{where} [eval]: {key} must be an integer >= {low}, got {settings[key]!r}")
    if not isinstance(settings["relevance"], int | float) or isinstance(settings["relevance"], bool):
        raise UserError(f"{where} [eval]: relevance must be a rating, got {settings['relevance']!r}")
    if not isinstance(settings["per_epoch"], bool):
        raise UserError(f"{where} [eval]: per_epoch must be true or false")
    return EvalConfig(**{**settings, "relevance": float(settings["relevance"])})


def objective_key(objective: str, k: int, where: str) -> str:
    """The metric a study optimises: "val_loss" (minimised) or "ndcg@10"-like (maximised), as logged."""
    if objective in ("val_loss", "mse"):
        return "val_loss"
    name, _, cut = objective.partition("@")
    if name not in RANKING_METRICS or cut != str(k):
        choices = ", ".join(f"{m}@{k}" for m in RANKING_METRICS)
        raise UserError(
            f"{where}: objective must be val_loss or one of {choices} (k comes from [eval]), got {objective!r}"
        )
    return f"{name}_at_{k}"
