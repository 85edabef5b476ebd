"""ItemKNN, the neighbourhood baseline of every reproducibility study (Ferrari Dacrema et al. 2019): a movie × movie
weight matrix of shrunk cosine similarities, each movie keeping its `neighbours` most similar movies.

S_ij = (xᵢ · xⱼ) / (‖xᵢ‖‖xⱼ‖ + shrink) over the columns of X, the users × movies matrix of training positives, with
S_ii = 0; each column j keeps its `neighbours` largest entries (among equal ones, the lower movie codes) and the rest
are zero.
A user's score for movie j is Σ S_ij over the movies i they chose: the same scoring as EASE's (cfexp.fit.ease), and
the same block ranking pass, and EASE's fit (cfexp.fit.ease.fit, which calls `weights_of`). It ranks only.
"""

from __future__ import annotations

import math

import torch

from cfexp.errors import UserError
from cfexp.fit.ease import EASE
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

    def fit_bytes(self) -> int:
        return SIMILARITY_COPIES * self.width**2 * 4

    def too_big(self, available: int) -> str:
        return super().too_big(available).replace("ease needs", "itemknn needs")

    def weights_of(self, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return similarities(x, self.neighbours, self.shrink), False


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
