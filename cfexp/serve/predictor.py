"""A trained variant wrapped to take raw MovieLens ids, so that a logged model predicts without cfexp's encoders."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cfexp.metrics.ranking import scores_for, top_k


class RatingPredictor(nn.Module):
    """forward(x): x is an (N, 2) tensor of raw (userId, movieId), or (N, 3) with each rating's Unix time for a
    time-aware model (without it, such a model rates at its latest time); returns N ratings, NaN for unseen ids.
    `recommend(userId, k)`: the k movies the model scores highest among those the user has not rated."""

    def __init__(self, model: nn.Module, user_ids: np.ndarray, movie_ids: np.ndarray, rated=None):
        super().__init__()
        self.model = model
        for side, ids in (("user", user_ids), ("movie", movie_ids)):
            order = np.argsort(ids)
            self.register_buffer(f"{side}_ids", torch.as_tensor(np.asarray(ids)[order], dtype=torch.long))
            self.register_buffer(f"{side}_codes", torch.as_tensor(order, dtype=torch.long))
        self.register_buffer("movie_of_code", torch.as_tensor(np.asarray(movie_ids), dtype=torch.long))
        users, movies = rated if rated is not None else (np.empty(0, np.int64), np.empty(0, np.int64))
        # every (user, movie) code pair of the dataset, as CSR: what each user has rated, left out of recommendations
        order = np.argsort(users, kind="stable")
        counts = np.bincount(users, minlength=len(user_ids))
        self.register_buffer("rated_offsets", torch.as_tensor(np.concatenate([[0], np.cumsum(counts)])))
        self.register_buffer("rated_movies", torch.as_tensor(np.asarray(movies)[order], dtype=torch.int32))

    @staticmethod
    def _lookup(ids: torch.Tensor, sorted_ids: torch.Tensor, codes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.searchsorted(sorted_ids, ids).clamp(max=len(sorted_ids) - 1)
        return codes[pos], sorted_ids[pos] == ids

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(x).to(self.user_ids.device).round().long()
        users, known_user = self._lookup(x[:, 0].contiguous(), self.user_ids, self.user_codes)
        movies, known_movie = self._lookup(x[:, 1].contiguous(), self.movie_ids, self.movie_codes)
        rows = (users, movies)
        if x.shape[1] > 2 and getattr(self.model, "takes_times", False):  # each rating's time (Unix seconds)
            rows += (x[:, 2],)
        out = self.model(*rows).float()
        return torch.where(known_user & known_movie, out, torch.full_like(out, float("nan")))

    @torch.inference_mode()
    def recommend(self, user_id: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(movieIds, scores) of the k best movies the user has not rated, best first (ties: lower code first).
        A user the model does not know raises KeyError."""
        code, known = self._lookup(torch.tensor([int(user_id)]), self.user_ids, self.user_codes)
        if not known:
            raise KeyError(user_id)
        all_movies = torch.arange(len(self.movie_of_code), device=self.movie_of_code.device)
        scores = scores_for(self.model.eval(), code, all_movies).float().contiguous()
        start, stop = int(self.rated_offsets[code]), int(self.rated_offsets[code + 1])
        scores[0, self.rated_movies[start:stop].long()] = -torch.inf
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        picked = top_k(scores, min(k, int(torch.isfinite(scores).sum())))[0]
        return self.movie_of_code[picked].numpy(), scores[0, picked].numpy()


def predictor_for(model: nn.Module, ratings, by_position: bool = False) -> RatingPredictor:
    """A trained model wrapped for `ratings`' ids (on the CPU, in eval mode), knowing what each user rated;
    `by_position`: ids are the positions 0..n-1 of the data's own (which are text)."""
    rated = (ratings.frame.user.to_numpy(), ratings.frame.movie.to_numpy())
    users, movies = ratings.user_ids, ratings.movie_ids
    if by_position:
        users, movies = np.arange(len(users)), np.arange(len(movies))
    return RatingPredictor(model.cpu().eval(), users, movies, rated)
