"""Filters applied to the ratings before they are split (`[data] min_user_ratings`, `min_movie_ratings`, `k_core`).

First the two thresholds, in one pass: a rating stays when its user has at least `min_user_ratings` ratings and its
movie at least `min_movie_ratings`, both counted in the file as read. Then the k-core: users and movies with fewer
than `k_core` ratings among those left are dropped, again and again, until every user and every movie left has at
least `k_core`. The ids left are numbered again, in the order they first appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfexp.data.ratings import Ratings, encoded
from cfexp.errors import UserError


@dataclass(frozen=True)
class Filtered:
    """What the filters took: the counts before and after, and the k-core's rounds."""

    before: dict[str, int]
    after: dict[str, int]
    rounds: int

    def sentence(self) -> str:
        parts = [f"{self.before[k]:,} → {self.after[k]:,} {k}" for k in ("ratings", "users", "movies")]
        rounds = f" ({self.rounds} k-core round{'s' * (self.rounds != 1)})" if self.rounds else ""
        return "filters: " + ", ".join(parts) + rounds


def counts(ratings: Ratings) -> dict[str, int]:
    return {"ratings": len(ratings.frame), "users": ratings.n_users, "movies": ratings.n_movies}


def apply(ratings: Ratings, min_user: int = 0, min_movie: int = 0, k_core: int = 0) -> tuple[Ratings, Filtered | None]:
    """The ratings the filters keep (the same object when there are none) and what they took."""
    if not (min_user > 1 or min_movie > 1 or k_core > 1):
        return ratings, None
    users, movies = ratings.frame.user.to_numpy(), ratings.frame.movie.to_numpy()
    keep = np.ones(len(users), dtype=bool)
    if min_user > 1 or min_movie > 1:
        keep &= np.bincount(users, minlength=ratings.n_users)[users] >= min_user
        keep &= np.bincount(movies, minlength=ratings.n_movies)[movies] >= min_movie
    rounds = 0
    while k_core > 1:
        user_counts = np.bincount(users[keep], minlength=ratings.n_users)
        movie_counts = np.bincount(movies[keep], minlength=ratings.n_movies)
        short = keep & ((user_counts[users] < k_core) | (movie_counts[movies] < k_core))
        if not short.any():
            break
        keep &= ~short
        rounds += 1
    if not keep.any():
        raise UserError(
            f"the filters (min_user_ratings {min_user}, min_movie_ratings {min_movie}, k_core {k_core}) leave no "
            f"rating of {ratings.source}"
        )
    frame = ratings.frame.loc[keep, [c for c in ratings.frame if c not in ("user", "movie")]].reset_index(drop=True)
    kept = encoded(frame, ratings.titles, ratings.source, ratings.implicit, ratings.repeats)
    return kept, Filtered(counts(ratings), counts(kept), rounds)
