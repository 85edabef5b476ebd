"""Top-N ranking metrics by full ranking: NDCG@k, Recall@k, HR@k and MAP@k, batched on the model's device.

The protocol (docs/evaluation.md): a user's candidates are every movie seen in training that the user
did not rate there (no sampled negatives: Krichene and Rendle, KDD 2020); a movie is relevant when the user rated it
at least `relevance` in validation; users with no relevant movie are left out (and counted); ties in the score are
broken by movieId. Recall@k is hits ÷ min(k, relevant), as is MAP@k's normaliser; NDCG@k uses binary gains and
1/log2(rank + 1) discounts. Scores come from the model for blocks of users at a time (a matrix product for the
factor models), never as the whole users × movies matrix.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cfexp.data.ratings import Ratings, TensorPart
from cfexp.metrics.ties import fill_ties
from cfexp.system import faults

SCORE_BLOCK = 1 << 24  # users × movies scored at once by a model's score_matrix (64 MB of float32)
GPU_SCORE_BLOCK = 1 << 28  # on a GPU (1 GB): a block's dozen small steps cost more than its products at 16M scores
PAIR_BLOCK = 1 << 18  # (user, movie) pairs at once through a model's forward (an MLP's activations are wide)
METRICS = ("ndcg", "recall", "hr", "map")


@dataclass(frozen=True)
class Protocol:
    k: int = 10
    relevance: float = 4.0

    def keys(self) -> list[str]:
        """MLflow metric names ('@' is not allowed in them): ndcg_at_10 and so on."""
        return [f"{name}_at_{self.k}" for name in METRICS]


class RankingData:
    """What full ranking needs of a split, on the device: candidates, each user's training movies and relevant ones.

    Movies are put in movieId order (`by_id`), so that among equal scores the lower movieId comes first."""

    def __init__(self, ratings: Ratings, train: TensorPart, val: TensorPart, protocol: Protocol):
        self.protocol = protocol
        device = train.users.device
        self.by_id = torch.as_tensor(np.argsort(ratings.movie_ids, kind="stable"), device=device)
        rank_of = torch.empty_like(self.by_id)
        rank_of[self.by_id] = torch.arange(len(self.by_id), device=device)  # a movie code's place in movieId order
        seen = torch.zeros(ratings.n_movies, dtype=torch.bool, device=device)
        seen[train.movies] = True
        self.non_candidates = torch.nonzero(~seen[self.by_id]).flatten()  # columns no one rated in training
        self.train_seen = _by_user(train.users, rank_of[train.movies], ratings.n_users)
        relevant = val.ratings >= protocol.relevance
        self.relevant = _by_user(val.users[relevant], rank_of[val.movies[relevant]], ratings.n_users)
        counts = self.relevant[0].diff()
        self.users = torch.nonzero(counts > 0).flatten()  # users with at least one relevant movie
        self.relevant_counts = counts

    @property
    def users(self) -> torch.Tensor:
        return self._users

    @users.setter
    def users(self, users: torch.Tensor) -> None:
        self._users, self._blocks = users, {}

    def blocks(self, size: int) -> list[Block]:
        """The ranked users in blocks of `size`, each with its entries to mask and to match, built once per size
        (every epoch and trial ranked on this split reuses them: on a GPU their sizes would otherwise stop the
        device on every block)."""
        if size not in self._blocks:
            self._blocks[size] = [
                self._block(self.users[start : start + size]) for start in range(0, len(self.users), size)
            ]
        return self._blocks[size]

    def _block(self, users: torch.Tensor) -> Block:
        n_movies = len(self.by_id)
        rel_row, rel_movie = _rows(self.relevant, users)
        seen_row, seen_movie = _rows(self.train_seen, users)
        return Block(
            users,
            (seen_row * n_movies + seen_movie).int(),  # within a block: below 2³¹ (score_block)
            torch.sort(rel_row * n_movies + rel_movie).values,
            self.relevant_counts[users].clamp(max=self.protocol.k).double(),
        )


@dataclass(frozen=True)
class Block:
    """A block of ranked users: the row * movies + movie places of their entries seen in training (int32: the
    blocks of every split stay in memory), the sorted keys of their relevant ones alike, and how many relevant
    movies each can hit at most (min(k, relevant))."""

    users: torch.Tensor
    seen: torch.Tensor
    relevant_keys: torch.Tensor
    ideal: torch.Tensor


def _by_user(users: torch.Tensor, movies: torch.Tensor, n_users: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(offsets, movies) with each user's movies in movies[offsets[u]:offsets[u + 1]] (CSR)."""
    order = torch.argsort(users, stable=True)
    counts = torch.bincount(users, minlength=n_users)
    offsets = torch.zeros(n_users + 1, dtype=torch.long, device=users.device)
    offsets[1:] = torch.cumsum(counts, 0)
    return offsets, movies[order]


def _rows(csr: tuple[torch.Tensor, torch.Tensor], users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For a block of users: (row within the block, movie) of every entry of theirs."""
    offsets, movies = csr
    starts, stops = offsets[users], offsets[users + 1]
    lengths = stops - starts
    row = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
    position = torch.arange(int(lengths.sum()), device=users.device) - torch.repeat_interleave(
        torch.cumsum(lengths, 0) - lengths, lengths
    )
    return row, movies[torch.repeat_interleave(starts, lengths) + position]


@torch.inference_mode()
def scores_for(model: nn.Module, users: torch.Tensor, by_id: torch.Tensor) -> torch.Tensor:
    """A block of users' scores for every movie, columns in movieId order."""
    if hasattr(model, "score_matrix"):
        return model.score_matrix(users, by_id)
    n = len(by_id)  # any other model: its forward over every (user, movie) pair of the block
    return model(users.repeat_interleave(n), by_id.repeat(len(users))).view(len(users), n)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Each row's k best columns, best first, ties broken by the lower column (movieId order).

    torch.topk picks any of equal scores, so the rows where the k-th score is tied with one topk left out (the
    (k+1)-th equals the k-th) are redone exactly (cfexp.metrics.ties)."""
    values, all_columns = torch.topk(scores, min(k + 1, scores.shape[1]), dim=1)
    crowded = torch.nonzero(values[:, k - 1] == values[:, k]).flatten() if values.shape[1] > k else values[:0, 0]
    columns = all_columns[:, :k].contiguous()
    if len(crowded):
        columns[crowded] = fill_ties(scores, crowded, values[crowded], all_columns[crowded], k)
    # equal scores within the k: lower column first (sort by column, then stably by score)
    by_column = torch.sort(columns, dim=1).values
    order = torch.sort(scores.gather(1, by_column), dim=1, descending=True, stable=True).indices
    return by_column.gather(1, order)


@torch.inference_mode()
def evaluate(model: nn.Module, data: RankingData) -> dict[str, float]:
    """The protocol's metrics averaged over users with a relevant movie, and how many users that is."""
    totals = torch.zeros(len(METRICS), dtype=torch.float64, device=data.users.device)
    for _, scores in _per_user_blocks(model, data):
        totals += scores.sum(0)
    n = len(data.users)
    keys = data.protocol.keys()
    if n == 0:  # no user has a relevant held-out movie: nothing to rank, and no figure to make up
        return {**dict.fromkeys(keys, math.nan), "ranked_users": 0}
    return {**{key: float(v) / n for key, v in zip(keys, totals.tolist(), strict=True)}, "ranked_users": n}


@torch.inference_mode()
def per_user(model: nn.Module, data: RankingData) -> tuple[np.ndarray, np.ndarray]:
    """Each ranked user's metrics (users × METRICS, in the order of `data.users`), for paired tests over users."""
    blocks = [scores.cpu().numpy() for _, scores in _per_user_blocks(model, data)]
    return data.users.cpu().numpy(), np.concatenate(blocks) if blocks else np.empty((0, len(METRICS)))


def score_block(model: nn.Module, device: torch.device) -> int:
    """The scores a ranking block holds: a factor model's products, else (user, movie) pairs through forward."""
    if not hasattr(model, "score_matrix"):
        return PAIR_BLOCK
    return GPU_SCORE_BLOCK if device.type == "cuda" else SCORE_BLOCK


def _per_user_blocks(model: nn.Module, data: RankingData):
    """(users, their NDCG, Recall, HR and MAP at k as rows) for blocks of the ranked users."""
    was_training = model.training
    model.eval()
    k = data.protocol.k
    n_movies = len(data.by_id)
    block = max(1, score_block(model, data.users.device) // n_movies)
    discount = 1.0 / torch.log2(torch.arange(k, device=data.users.device, dtype=torch.float64) + 2)
    try:
        for part in data.blocks(block):
            faults.point("ranking")
            users = part.users
            scores = scores_for(model, users, data.by_id).float().contiguous()  # writable: a model may expand()
            scores.index_fill_(1, data.non_candidates, -math.inf)  # the movies no one rated in training
            scores.view(-1)[part.seen] = -math.inf
            picked = top_k(scores, k)
            # hits: the picked (row, movie) pairs among the relevant ones, found in their sorted keys
            keys = part.relevant_keys
            picked_keys = torch.arange(len(users), device=picked.device)[:, None] * n_movies + picked
            at = torch.searchsorted(keys, picked_keys).clamp_(max=max(len(keys) - 1, 0))
            found = keys[at] == picked_keys if len(keys) else torch.zeros_like(picked, dtype=torch.bool)
            # a user with fewer than k candidates gets non-candidates (-inf) at the end of the list: never hits
            hits = (found & torch.isfinite(scores.gather(1, picked))).double()
            ideal = part.ideal
            dcg = hits @ discount
            idcg = torch.cumsum(discount, 0)[ideal.long() - 1]
            precision_at = torch.cumsum(hits, 1) / torch.arange(1, k + 1, device=hits.device)
            yield (
                users,
                torch.stack(
                    [dcg / idcg, hits.sum(1) / ideal, (hits.sum(1) > 0).double(), (precision_at * hits).sum(1) / ideal],
                    dim=1,
                ),
            )
    finally:
        model.train(was_training)


class RankingCallback:
    """A trainer callback: the ranking metrics of the model as it ends (`final`), and each epoch's when asked
    (added to the epoch's metrics, so that the tracker logs them and a pruner can follow them)."""

    def __init__(self, data: RankingData, per_epoch: bool = False):
        self.data, self.per_epoch = data, per_epoch
        self.model: nn.Module | None = None
        self.final: dict[str, float] = {}
        self.seconds = 0.0  # spent ranking, every epoch's and the final one's

    def on_fit_start(self, model: nn.Module, recipe) -> None:
        self.model = model

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.per_epoch:
            metrics.update(self._timed())

    def on_fit_end(self, result) -> None:
        if result.status != "diverged":
            self.final = self._timed()

    def _timed(self) -> dict[str, float]:
        started = time.perf_counter()
        found = evaluate(self.model, self.data)
        self.seconds += time.perf_counter() - started
        return found
