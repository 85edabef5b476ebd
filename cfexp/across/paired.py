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
from scipy import stats

from cfexp.evaluation.holdout import RESAMPLES, champion_lead, per_user_errors
from cfexp.metrics import ranking
from cfexp.metrics.ranking import Protocol
from cfexp.serve.recommend import load_recommender
from cfexp.variants import refit

ALPHA = 0.05


@cache
def _model(run_id: str):
    return load_recommender(f"runs:/{run_id}/model")


def mse_test(result, a: str, b: str) -> tuple[float, float]:
    """(b's test MSE − a's, the paired permutation p) over the setting's test users; NaN where either has no final."""
    runs = {st.label: st.final.run_id for st in result.tested()}
    if a not in runs or b not in runs:
        return math.nan, math.nan
    frame = result.dataset.ratings.frame.iloc[result.dataset.split.test][["userId", "movieId", "rating"]]
    with torch.inference_mode():
        errors = [per_user_errors(_model(runs[x]).predict_ratings, frame) for x in (a, b)]
    lead = champion_lead(a, errors[0], b, errors[1])
    return lead.lead, lead.p


def ndcg_test(result, a: str, b: str, k: int) -> tuple[float, float]:
    """(a's mean test NDCG@k − b's, the paired permutation p) over the setting's ranked test users."""
    runs = {st.label: st.final.run_id for st in result.tested()}
    if a not in runs or b not in runs:
        return math.nan, math.nan
    dataset = result.dataset
    protocol = Protocol(k, result.key.relevance)
    holdout = refit.holdout_for(dataset.ratings, dataset.split, "cpu", protocol)
    scores = [ranking.per_user(_model(runs[x]).predictor.model, holdout.ranking)[1][:, 0] for x in (a, b)]
    if not len(scores[0]):
        return math.nan, math.nan
    difference = scores[0] - scores[1]
    found = stats.permutation_test(
        (scores[0], scores[1]),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=RESAMPLES,
        random_state=np.random.default_rng(0),
    )
    return float(difference.mean()), float(found.pvalue)
