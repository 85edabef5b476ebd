"""ItemKNN, the neighbourhood baseline of every reproducibility study (Ferrari Dacrema et al. 2019): a movie × movie
weight matrix of shrunk cosine similarities, each movie keeping its `neighbours` most similar movies.

S_ij = (xᵢ · xⱼ) / (‖xᵢ‖‖xⱼ‖ + shrink) over the columns of X, the users × movies matrix of training positives, with
S_ii = 0; each column j keeps its `neighbours` largest entries (among equal ones, the lower movie codes) and the rest
are zero.
A user's score for movie j is Σ S_ij over the movies i they chose: the same scoring as EASE's (cfexp.fit.ease), and
the same block ranking pass. It ranks only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from cfexp.data.implicit import free_bytes
from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError
from cfexp.fit.common import FitResult, Recipe, notify, one_epoch_fit
from cfexp.fit.ease import EASE, positives_matrix
from cfexp.metrics.ranking import top_k

SIMILARITY_COPIES = 3  # the co-occurrences, the similarities and the kept weights live at once (float32)


class ItemKNN(EASE):
    """EASE's scoring (positives × a movie × movie matrix) over kept neighbours of shrunk cosine similarity."""

    def __init__(self, n_users: int, n_movies: int, neighbours: int, shrink: float, positives: float, max_items: int):
        if not isinstance(neighbours, int) or isinstance(neighbours, bool) or neighbours < 1:
            raise UserError(f"neighbours must be an integer >= 1, got {neighbours!r}")
        if not (isinstance(shrink, int | float) and not isinstance(shrink, bool) and 0 <= shrink < math.inf):
            raise UserError(f"shrink must be a number >= 0, got {shrink!r}")
        super().__init__(n_users, n_movies, 1.0, positives, max_items)
        self.neighbours, self.shrink = neighbours, float(shrink)

    @property
    def dual(self) -> bool:
        return False

    def fit_bytes(self) -> int:
        return SIMILARITY_COPIES * self.width**2 * 4

    def too_big(self, available: int) -> str:
        return super().too_big(available).replace("ease needs", "itemknn needs")


def similarities(x: torch.Tensor, neighbours: int, shrink: float) -> torch.Tensor:
    """The kept weights: shrunk cosine similarities of X's columns, each column's `neighbours` largest kept."""
    gram = torch.sparse.mm(x.t().coalesce(), x).to_dense()  # co-occurrence counts
    norms = gram.diagonal().sqrt()
    gram.div_(norms[:, None] * norms[None, :] + shrink)
    gram.diagonal().zero_()
    gram = torch.nan_to_num_(gram, nan=0.0)  # a movie with no positive: no similarity
    rows = top_k(gram.T, min(neighbours, gram.shape[0])).T  # column j's neighbours, the ranking's tie rule
    weights = torch.zeros_like(gram)
    weights.scatter_(0, rows, gram.gather(0, rows))
    return weights


@torch.no_grad()
def fit(model: ItemKNN, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """The neighbour weights in one pass, as one epoch (its ranking is what the runner's ranking callback adds)."""
    device = train.ratings.device
    model.to(device)
    result = FitResult(status="completed")
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    available = free_bytes(device)
    if model.fit_bytes() > available:
        raise UserError(model.too_big(available))
    x, kept, kept_column, positives = positives_matrix(model, train)
    model.set_fitted(similarities(x, model.neighbours, model.shrink), kept, positives, kept_column)
    fitted = time.perf_counter()
    metrics = {"epoch": 0, "train_loss": math.nan, "val_loss": math.nan, "positives": float(len(positives))}
    metrics.update({"seconds": fitted - started, "train_seconds": fitted - started})
    return one_epoch_fit(result, metrics, callbacks, started)
