"""A trained variant wrapped to take raw MovieLens ids, so that a logged model predicts without cfexp's encoders."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class RatingPredictor(nn.Module):
    """forward(x): x is an (N, 2) tensor of raw (userId, movieId); returns N ratings, NaN for unseen ids."""

    def __init__(self, model: nn.Module, user_ids: np.ndarray, movie_ids: np.ndarray):
        super().__init__()
        self.model = model
        for side, ids in (("user", user_ids), ("movie", movie_ids)):
            order = np.argsort(ids)
            self.register_buffer(f"{side}_ids", torch.as_tensor(np.asarray(ids)[order], dtype=torch.long))
            self.register_buffer(f"{side}_codes", torch.as_tensor(order, dtype=torch.long))

    @staticmethod
    def _lookup(ids: torch.Tensor, sorted_ids: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.searchsorted(sorted_ids, ids).clamp(max=len(sorted_ids) - 1)
        return codes[pos], sorted_ids[pos] == ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).to(self.user_ids.device).round().long()
        users, known_user = self._lookup(x[:, 0].contiguous(), self.user_ids, self.user_codes)
        movies, known_movie = self._lookup(x[:, 1].contiguous(), self.movie_ids, self.movie_codes)
        out = self.model(users, movies).float()
        return torch.where(known_user & known_movie, out, torch.full_like(out, float("nan")))


def predictor_for(model: nn.Module, ratings) -> tuple[RatingPredictor, torch.Tensor]:
    """A trained model wrapped for `ratings`' ids (on the CPU, in eval mode), and an example input for its signature."""
    example = torch.tensor(ratings.frame[["userId", "movieId"]].to_numpy()[:5], dtype=torch.float32)
    return RatingPredictor(model.cpu().eval(), ratings.user_ids, ratings.movie_ids), example
