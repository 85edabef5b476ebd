"""Paired tests of two studies' final models within one setting, over its test users: test MSE (the bootstrap and
permutation test of cfexp.evaluation.holdout, as `cfexp evaluate` runs it), or test NDCG@k per user (a paired
permutation test of the mean difference, each user's two scores swapped at random).

The models are the finals as logged; nothing is re-trained. A p-value below ALPHA is significant.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

from cfexp.evaluation.holdout import champion_lead, ndcg_lead, per_user_errors
from cfexp.metrics import ranking
from cfexp.metrics.ranking import Protocol
from cfexp.serve.recommend import load_recommender
from cfexp.variants import refit

ALPHA = 0.05


@cache
def _model(run_id: str):
    return load_recommender(f"runs:/{run_id}/model")


def _runs(result) -> dict[str, str]:
    return {st.label: st.final.run_id for st in result.tested()}


def _errors(result, run_id: str):
    """The final model's per-user squared errors on the setting's test split, computed once per setting."""
    key = ("mse", run_id)
    if key not in result.scores:
        frame = result.dataset.ratings.held_out(result.dataset.split.test)
        with torch.inference_mode():
            result.scores[key] = per_user_errors(_model(run_id).predict_ratings, frame)
    return result.scores[key]


def _ndcg(result, run_id: str, k: int) -> np.ndarray:
    """The final model's per-user test NDCG@k, computed once per setting (the ranking data built once too)."""
    if ("ranking", k) not in result.scores:
        protocol = Protocol(k, result.key.relevance)
        holdout = refit.holdout_for(result.dataset.ratings, result.dataset.split, "cpu", protocol)
        result.scores[("ranking", k)] = holdout.ranking
    key = ("ndcg", run_id, k)
    if key not in result.scores:
        result.scores[key] = ranking.per_user(_model(run_id).predictor.model, result.scores[("ranking", k)])[1][:, 0]
    return result.scores[key]


def mse_test(result, a: str, b: str) -> tuple[float, float]:
    """(b's test MSE − a's, the paired permutation p) over the setting's test users; NaN where either has no final."""
    runs = _runs(result)
    if a not in runs or b not in runs:
        return math.nan, math.nan
    lead = champion_lead(a, _errors(result, runs[a]), b, _errors(result, runs[b]))
    return lead.lead, lead.p


def ndcg_test(result, a: str, b: str, k: int) -> tuple[float, float]:
    """(a's mean test NDCG@k − b's, the paired permutation p) over the setting's ranked test users."""
    runs = _runs(result)
    if a not in runs or b not in runs:
        return math.nan, math.nan
    first, second = _ndcg(result, runs[a], k), _ndcg(result, runs[b], k)
    if not len(first):
        return math.nan, math.nan
    lead = ndcg_lead(a, first, b, second, k)
    return lead.lead, lead.p
