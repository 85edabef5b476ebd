"""Ranking metrics checked against scikit-learn's ndcg_score and a brute-force reading of the protocol."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import ndcg_score
from torch import nn

from cfexp.data import ratings as data
from cfexp.metrics.ranking import Protocol, RankingData, evaluate, top_k
from cfexp.variants import runner


class FixedScores(nn.Module):
    """A 'model' whose score for (user, movie) is a given table."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(table, dtype=torch.float32), requires_grad=False)

    def forward(self, users, movies):
        return self.table[users, movies]

    def score_matrix(self, users, movies):
        return self.table[users][:, movies]


class PairsOnly(FixedScores):
    score_matrix = None  # forces the pairwise path

    def __getattribute__(self, name):
        if name == "score_matrix":
            raise AttributeError(name)
        return super().__getattribute__(name)


def tiny_split(tmp_path, seed: int, n_users=12, n_movies=40, n_ratings=260):
    """Random ratings with shuffled, non-contiguous movieIds; 75% train, the rest validation."""
    rng = np.random.default_rng(seed)
    pairs = rng.choice(n_users * n_movies, n_ratings, replace=False)
    movie_ids = rng.permutation(np.arange(1, 400))[:n_movies] * 7
    frame = pd.DataFrame(
        {
            "userId": pairs // n_movies + 1,
            "movieId": movie_ids[pairs % n_movies],
            "rating": rng.choice(np.arange(1, 11) / 2, n_ratings),
            "timestamp": 0,
        }
    )
    path = tmp_path / f"r{seed}.csv"
    frame.to_csv(path, index=False)
    ratings = data.load_ratings(path)
    order = rng.permutation(len(ratings.frame))
    cut = int(0.75 * len(order))
    split = data.Split(np.sort(order[:cut]), np.sort(order[cut:]), np.empty(0, dtype=np.int64))
    return ratings, runner.to_device(ratings, split, "cpu", Protocol(k=5, relevance=3.5))


def brute_force(ratings, tensors, scores: np.ndarray, k: int, relevance: float) -> dict:
    """The protocol read literally, one user at a time (ties by the lower movieId)."""
    train_u, train_m = tensors.train.users.numpy(), tensors.train.movies.numpy()
    val_u, val_m, val_r = (t.numpy() for t in (tensors.val.users, tensors.val.movies, tensors.val.ratings))
    seen = set(train_m.tolist())
    totals, users = np.zeros(4), 0
    for user in range(ratings.n_users):
        relevant = set(val_m[(val_u == user) & (val_r >= relevance)].tolist())
        if not relevant:
            continue
        users += 1
        own = set(train_m[train_u == user].tolist())
        candidates = sorted(seen - own, key=lambda m: (-scores[user, m], ratings.movie_ids[m]))
        hits = [1.0 if m in relevant else 0.0 for m in candidates[:k]]
        ideal = min(k, len(relevant))
        dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
        idcg = sum(1 / math.log2(i + 2) for i in range(ideal))
        precision = [sum(hits[: i + 1]) / (i + 1) for i in range(len(hits))]
        average_precision = sum(p * h for p, h in zip(precision, hits, strict=True)) / ideal
        totals += [dcg / idcg, sum(hits) / ideal, float(any(hits)), average_precision]
    return {"ndcg": totals[0] / users, "recall": totals[1] / users, "hr": totals[2] / users, "map": totals[3] / users}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_a_brute_force_reading_of_the_protocol(tmp_path, seed):
    ratings, tensors = tiny_split(tmp_path, seed)
    scores = np.random.default_rng(seed + 10).random((ratings.n_users, ratings.n_movies)).round(1)  # many ties
    expected = brute_force(ratings, tensors, scores, k=5, relevance=3.5)
    for model in (FixedScores(scores), PairsOnly(scores)):
        got = evaluate(model, tensors.ranking)
        for name, value in expected.items():
            assert got[f"{name}_at_5"] == pytest.approx(value, abs=1e-9), name


def test_ndcg_matches_scikit_learn(tmp_path):
    """scikit-learn's ndcg_score, per user over its candidates, with distinct scores (sklearn averages ties)."""
    ratings, tensors = tiny_split(tmp_path, 5)
    scores = np.random.default_rng(3).permutation(ratings.n_users * ratings.n_movies).reshape(ratings.n_users, -1)
    data_ = tensors.ranking
    train_u, train_m = tensors.train.users.numpy(), tensors.train.movies.numpy()
    val_u, val_m, val_r = (t.numpy() for t in (tensors.val.users, tensors.val.movies, tensors.val.ratings))
    seen = np.unique(train_m)
    per_user = []
    for user in range(ratings.n_users):
        relevant = set(val_m[(val_u == user) & (val_r >= 3.5)].tolist())
        if not relevant or not relevant <= set(seen.tolist()):
            continue  # sklearn can only count relevant movies that are candidates
        candidates = np.setdiff1d(seen, train_m[train_u == user])
        truth = np.isin(candidates, list(relevant)).astype(float)
        per_user.append((user, ndcg_score([truth], [scores[user, candidates]], k=5)))
    assert len(per_user) >= 5
    model = FixedScores(scores.astype(np.float32))
    for user, expected in per_user:
        only = RankingData(ratings, tensors.train, tensors.val, data_.protocol)
        only.users = torch.tensor([user])
        assert evaluate(model, only)["ndcg_at_5"] == pytest.approx(expected, abs=1e-6)


def test_ties_go_to_the_lower_movie_id_and_padding_never_hits():
    scores = torch.tensor([[1.0, 3.0, 3.0, 3.0, 0.0], [-math.inf, -math.inf, 2.0, -math.inf, -math.inf]])
    assert top_k(scores, 3).tolist()[0] == [1, 2, 3]
    assert top_k(scores, 3).tolist()[1][0] == 2


@pytest.mark.parametrize("loop", [True, False], ids=["numba loop", "torch ops (the GPU's path)"])
def test_crowded_rows_take_the_lowest_tied_columns(monkeypatch, loop):
    """Rows clamped to a ceiling hold many equal top scores: the k taken are those above the tie, then the lowest
    tied columns, exactly as a full sort by (score descending, column ascending) orders them."""
    from cfexp.metrics import ranking, ties

    real = ties.fill_ties
    monkeypatch.setattr(ranking, "fill_ties", lambda *args: real(*args, loop=loop))
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (64, 300), generator=gen).float().clamp(max=4.0)  # many ties at 4 and below
    scores[::7, ::3] = -math.inf
    scores[5, :] = 1.0  # one row entirely tied
    k = 10
    picked = top_k(scores, k)
    columns = torch.arange(scores.shape[1]).expand_as(scores)
    keys = scores.double() * 1000 - columns  # score first, then the lower column
    expected = torch.sort(keys, dim=1, descending=True).indices[:, :k]
    assert torch.equal(picked, expected)


def test_users_without_a_relevant_movie_are_left_out_and_counted(tmp_path):
    ratings, tensors = tiny_split(tmp_path, 7)
    val_u, val_r = tensors.val.users.numpy(), tensors.val.ratings.numpy()
    expected = len(np.unique(val_u[val_r >= 3.5]))
    got = evaluate(FixedScores(np.zeros((ratings.n_users, ratings.n_movies))), tensors.ranking)
    assert got["ranked_users"] == expected < ratings.n_users


def test_popular_matches_the_issues_reference_on_the_lessons_split(ratings):
    """648 users with a relevant movie; popular scores NDCG@10 0.1476 and Recall@10 0.1465 (issue 11)."""
    from cfexp.config.experiment import RunConfig

    tensors = runner.to_device(ratings, data.split_rows(len(ratings.frame)), "cpu")
    run = runner.resolved(RunConfig(name="popular", variant="popular"), tensors)
    _, result = runner.fit_run(run, tensors)
    assert result.ranking["ranked_users"] == 648
    assert result.ranking["ndcg_at_10"] == pytest.approx(0.1476, abs=5e-5)
    assert result.ranking["recall_at_10"] == pytest.approx(0.1465, abs=5e-5)
    assert math.isnan(result.best_val_loss)  # it predicts no ratings
