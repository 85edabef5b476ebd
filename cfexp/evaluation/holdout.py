"""The champions against their peers on the test split: a paired bootstrap interval, over test users, of how much
lower the rating champion's test MSE is than the runner-up's (or how much higher the ranking champion's NDCG@k is
than the top-N floor's, ease), with a paired permutation test.

Both are the studies' final models as logged (refit on train + validation); the champion is the study with the
lowest validation MSE and the runner-up the next one (selection never looks at test). A test user is the unit that
is resampled, with all their test ratings, so that the interval holds for new users like these (scipy's bootstrap,
BCa, 95%). The p-value is a paired permutation test over the same users: each user's two models' errors swapped at
random (scipy's permutation_test), two-sided.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ChampionLead:
    champion: str
    runner_up: str
    lead: float  # runner-up's test MSE minus the champion's: > 0 when the champion is better
    low: float
    high: float
    users: int
    p: float = float("nan")  # the paired permutation test's, two-sided
    metric: str = "MSE"  # or "NDCG@k": the lead is then the champion's mean NDCG over the users minus the other's

    def sentence(self) -> str:
        verdict = "beats" if self.low > 0 else "is not clearly better than"
        if self.lead < 0 and self.high < 0:
            verdict = "is beaten by"
        return (
            f"on the test split, {self.champion} {verdict} {self.runner_up} by {self.lead:.4f} {self.metric} "
            f"(95% bootstrap interval over {self.users} test users [{self.low:.4f}, {self.high:.4f}]; "
            f"paired permutation test p = {self.p:.3g})"
        )

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def per_user_errors(predict, test: pd.DataFrame) -> pd.DataFrame:
    """Each test user's summed squared error and rating count; `predict` maps a frame of userId and movieId (and
    timestamp, where `test` has one) to ratings."""
    pairs = test[[c for c in ("userId", "movieId", "timestamp") if c in test]]
    errors = (np.asarray(predict(pairs), dtype=np.float64) - test.rating.to_numpy(np.float64)) ** 2
    frame = pd.DataFrame({"user": test.userId.to_numpy(), "sq": errors})
    return frame.groupby("user").sq.agg(["sum", "count"])


def champion_lead(
    champion: str, champ: pd.DataFrame, runner_up: str, other: pd.DataFrame, seed: int = 0
) -> ChampionLead:
    """The paired bootstrap over users of (runner-up's MSE − champion's MSE), each MSE over the resampled ratings."""
    both = champ.join(other, lsuffix="_a", rsuffix="_b", how="inner")
    a, b, n = (both[c].to_numpy() for c in ("sum_a", "sum_b", "count_a"))

    def lead(a, b, n, axis=-1):
        return (b.sum(axis) - a.sum(axis)) / n.sum(axis)

    found = stats.bootstrap(
        (a, b, n),
        lead,
        paired=True,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    interval = found.confidence_interval
    swapped = stats.permutation_test(
        (a, b),
        lambda a, b, axis=-1: lead(a, b, n, axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=RESAMPLES,
        random_state=np.random.default_rng(seed),
    )
    return ChampionLead(
        champion, runner_up, float(lead(a, b, n)), float(interval.low), float(interval.high), len(both),
        float(swapped.pvalue),
    )  # fmt: skip


def ndcg_lead(champion: str, champ: np.ndarray, other_name: str, other: np.ndarray, k: int, seed: int = 0):
    """The paired bootstrap over users of (champion's NDCG@k − the other's), and the paired permutation test; the
    arrays hold each ranked test user's NDCG, in the same user order."""
    differences = np.asarray(champ, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    found = stats.bootstrap(
        (differences,), np.mean, vectorized=True, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
        method="BCa", random_state=np.random.default_rng(seed),
    )  # fmt: skip
    swapped = stats.permutation_test(
        (champ, other),
        lambda x, y, axis=-1: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=RESAMPLES,
        random_state=np.random.default_rng(seed),
    )
    interval = found.confidence_interval
    return ChampionLead(
        champion, other_name, float(differences.mean()), float(interval.low), float(interval.high),
        len(differences), float(swapped.pvalue), f"NDCG@{k}",
    )  # fmt: skip


def per_user_ndcg(run_id: str, data) -> np.ndarray:
    """A final model's NDCG@k for each ranked test user of `data` (a RankingData), in its user order."""
    import torch

    from cfexp.metrics import ranking
    from cfexp.serve.recommend import load_recommender

    model = load_recommender(f"runs:/{run_id}/model").predictor.model
    with torch.inference_mode():
        return ranking.per_user(model, data)[1][:, 0]


def ranking_lead(studies, ratings, split, protocol, seed: int = 0) -> ChampionLead | None:
    """The ranking champion (the highest validation NDCG among the studies tuned for it) against the top-N floor
    (the study of the variant declared the `top-n` yardstick: ease), or the runner-up where the champion is it."""
    from cfexp.search.final_run import final_of
    from cfexp.variants import refit
    from cfexp.variants.registry import get_variant

    tuned = []
    for spec, study in studies:
        final = final_of(study)
        if final is None or spec.objective == "val_loss" or spec.direction != "maximize":
            continue
        best = study.get_trials(deepcopy=False)[final["trial"]]
        if best.value is not None:
            tuned.append((best.value, spec.name, final["run_id"], get_variant(spec.run.variant).yardstick))
    if len(tuned) < 2:
        return None
    tuned.sort(key=lambda t: -t[0])
    champion = tuned[0]
    floors = [t for t in tuned[1:] if t[3] == "top-n"]
    other = floors[0] if floors else tuned[1]
    data = refit.holdout_for(ratings, split, "cpu", protocol).ranking
    first, second = per_user_ndcg(champion[2], data), per_user_ndcg(other[2], data)
    return ndcg_lead(champion[1], first, other[1], second, protocol.k, seed)


def compare_finals(studies, ratings, split, seed: int = 0) -> ChampionLead | None:
    """The champion's final model against the runner-up's on the test split (None with fewer than two finals).

    `studies` are (StudySpec, optuna.Study) pairs of one experiment; their final models are loaded from MLflow."""
    import math

    import torch

    from cfexp.search.final_run import final_of
    from cfexp.search.study_summary import best_val_loss
    from cfexp.serve.recommend import load_recommender

    rated = []
    for spec, study in studies:
        final = final_of(study)
        if final is None or spec.objective != "val_loss":
            continue
        best = study.get_trials(deepcopy=False)[final["trial"]]
        if math.isfinite(best_val_loss(best)):
            rated.append((best_val_loss(best), spec.name, final["run_id"]))
    if len(rated) < 2:
        return None
    (_, champion, champion_run), (_, runner_up, runner_run) = sorted(rated)[:2]
    test = ratings.held_out(split.test)

    def errors(run_id: str) -> pd.DataFrame:
        model = load_recommender(f"runs:/{run_id}/model")  # it maps the data's ids, numbers or text, itself
        with torch.inference_mode():
            return per_user_errors(model.predict_ratings, test)

    return champion_lead(champion, errors(champion_run), runner_up, errors(runner_run), seed)
