"""`make bench`'s honest comparisons on the lesson's split: cfexp's baselines and ranking beside LensKit's,
Cornac's and implicit's models, scored by cfexp's own protocol, and the share of a default trial spent on ranking
metrics.

Every peer trains on the same training rows and is scored on the same validation rows. A validation movie that a
peer never saw in training gets the peer's fallback (LensKit's Bias, as its pipelines do; Cornac's global mean),
so that every model is scored on every row. For ranking, a peer's predicted ratings are its scores.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import torch
from torch import nn

from cfexp.bench.training import seed_tensors, sweep_study_point
from cfexp.config.experiment import RunConfig
from cfexp.data import ratings as data
from cfexp.metrics import ranking
from cfexp.variants import runner

LENSKIT_ALS = {"embedding_size": 100, "regularization": 0.1}
CORNAC_MF = {"k": 100, "lambda_reg": 0.1, "max_iter": 100, "seed": 42}
IMPLICIT_BPR = {"random_state": 42}  # its defaults: 100 factors, lr 0.01, regularization 0.01, 100 iterations


class ScoreTable(nn.Module):
    """A peer's scores for every (user, movie), in cfexp's codes, so that cfexp's protocol ranks them."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))

    def forward(self, users, movies):
        return self.table[users, movies]

    def score_matrix(self, users, movies):
        return self.table[users][:, movies]


def _frames():
    ratings = data.load_ratings()
    split = data.split_rows(len(ratings.frame))
    frame = ratings.frame
    return ratings, split, frame.iloc[split.train], frame.iloc[split.val]


def _mse(predicted: np.ndarray, val: pd.DataFrame) -> float:
    return float(((predicted - val.rating.to_numpy()) ** 2).mean())


def _ndcg(table: np.ndarray, tensors) -> dict:
    return ranking.evaluate(ScoreTable(table), tensors.ranking)


def measure_cfexp_baselines(device: str) -> dict:
    """cfexp's bias (damping 5, LensKit's setting) and popular on the lesson's split."""
    _, tensors = seed_tensors(device)
    out = {}
    for name, options in (("bias", {"damping": 5.0}), ("popular", {}), ("mean", {})):
        run = runner.resolved(RunConfig(name=name, variant=name, options=options), tensors)
        _, result = runner.fit_run(run, tensors)
        out[name] = {"val_mse": result.best_val_loss, "seconds": result.seconds, **result.ranking}
    return out


def measure_lenskit(device: str) -> dict:
    """LensKit 2025.8: Bias (damping 5) and biased ALS (100 features, regularization 0.1), MSE and NDCG@10."""
    from lenskit.als import BiasedMFScorer
    from lenskit.basic import BiasScorer
    from lenskit.data import ItemList, from_interactions_df

    ratings, _, train, val = _frames()
    _, tensors = seed_tensors("cpu")
    dataset = from_interactions_df(
        train[["userId", "movieId", "rating"]].rename(columns={"userId": "user_id", "movieId": "item_id"})
    )
    bias = BiasScorer(damping=5.0)
    out = {}
    for name, scorer in (("bias", bias), ("biased_als", BiasedMFScorer(**LENSKIT_ALS))):
        started = time.perf_counter()
        scorer.train(dataset)
        seconds = time.perf_counter() - started
        table = np.full((ratings.n_users, ratings.n_movies), np.nan, dtype=np.float32)
        every = ItemList(item_ids=ratings.movie_ids)
        fallback = np.full_like(table, np.nan)
        for code, user in enumerate(ratings.user_ids):
            table[code] = scorer(query=user, items=every).scores()
            if scorer is not bias:
                fallback[code] = bias(query=user, items=every).scores()
        known = np.isfinite(table)
        table = np.where(known, table, fallback) if scorer is not bias else table
        users, movies = val.userId.map(_codes(ratings.user_ids)), val.movieId.map(_codes(ratings.movie_ids))
        predicted = table[users.to_numpy(), movies.to_numpy()]
        on_known = known[users.to_numpy(), movies.to_numpy()]
        out[name] = {
            "val_mse": _mse(predicted, val),
            "val_mse_known_items": _mse(predicted[on_known], val[on_known]),
            "seconds": seconds,
            **_ndcg(np.nan_to_num(table, nan=-np.inf), tensors),
        }
    return out


def measure_cornac(device: str) -> dict:
    """Cornac's MF (k 100, λ 0.1, 100 iterations, its other defaults), MSE and NDCG@10."""
    from cornac.data import Dataset
    from cornac.models import MF

    ratings, _, train, val = _frames()
    _, tensors = seed_tensors("cpu")
    triples = list(zip(train.userId.astype(str), train.movieId.astype(str), train.rating, strict=True))
    dataset = Dataset.from_uir(triples, seed=42)
    model = MF(**CORNAC_MF)
    started = time.perf_counter()
    model.fit(dataset)
    seconds = time.perf_counter() - started
    mean = float(train.rating.mean())
    table = np.full((ratings.n_users, ratings.n_movies), mean, dtype=np.float32)
    user_codes = _codes(ratings.user_ids)
    movie_codes = np.array([_codes(ratings.movie_ids)[int(m)] for m in dataset.item_ids])
    for user, inner in dataset.uid_map.items():
        table[user_codes[int(user)], movie_codes] = model.score(inner)
    users, movies = val.userId.map(user_codes).to_numpy(), val.movieId.map(_codes(ratings.movie_ids)).to_numpy()
    return {"mf": {"val_mse": _mse(table[users, movies], val), "seconds": seconds, **_ndcg(table, tensors)}}


def measure_implicit(device: str) -> dict:
    """implicit's BPR (its defaults) on the training rows as positives, as cfexp's bpr takes them: NDCG@10."""
    import scipy.sparse as sparse
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    ratings, _, train, _ = _frames()
    _, tensors = seed_tensors("cpu")
    users = train.userId.map(_codes(ratings.user_ids)).to_numpy()
    movies = train.movieId.map(_codes(ratings.movie_ids)).to_numpy()
    positives = sparse.csr_matrix(
        (np.ones(len(users), np.float32), (users, movies)), shape=(ratings.n_users, ratings.n_movies)
    )
    model = BayesianPersonalizedRanking(**IMPLICIT_BPR)
    started = time.perf_counter()
    model.fit(positives, show_progress=False)
    seconds = time.perf_counter() - started
    table = np.asarray(model.user_factors @ model.item_factors.T)  # its item bias rides in the last factor
    return {"bpr": {"val_mse": None, "seconds": seconds, **_ndcg(table, tensors)}}


def measure_ranking_share(device: str) -> dict:
    """The default sweep's warm-start dot_bias_sigmoid trial: its fit, and its final ranking pass, timed apart."""
    _, tensors = seed_tensors(device)
    run = runner.resolved(sweep_study_point("dot_bias_sigmoid"), tensors)
    started = time.perf_counter()
    model, result = runner.fit_run(run, tensors)
    trial = time.perf_counter() - started
    fresh = runner.to_device(tensors.ratings, tensors.split, device)  # the protocol's sets are built again, timed
    started = time.perf_counter()
    ranking.evaluate(model, fresh.ranking)
    first = time.perf_counter() - started
    again = []
    for _ in range(4):
        started = time.perf_counter()
        ranking.evaluate(model, fresh.ranking)
        again.append(time.perf_counter() - started)
    return {
        "trial_seconds": trial,
        "epochs": len(result.history),
        "ranking_seconds": statistics.median(again),
        "ranking_first_seconds": first,  # includes building the candidates and relevant sets once
        "share": first / trial,
    }


def _codes(ids: np.ndarray) -> dict:
    return {int(v): i for i, v in enumerate(ids)}
