"""An experiment's data as every command uses them: the ratings read as `[data]` says, filtered, and split.

Also what a protocol leaves cold: held-out rows whose user or movie has no row in what the model is fitted on. A
factor model has learned nothing for them; they are counted and reported, never dropped (docs/evaluation.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cfexp.config.data_table import DataConfig
from cfexp.data import filters, splits
from cfexp.data.filters import Filtered
from cfexp.data.ratings import Ratings, load_ratings, summary
from cfexp.data.splits import Split
from cfexp.errors import UserError


@dataclass(frozen=True)
class Dataset:
    ratings: Ratings  # filtered
    split: Split
    settings: DataConfig
    filtered: Filtered | None = None

    def cold(self) -> dict[str, dict[str, int]]:
        """Cold counts of each held-out part: validation against train (what trials are fitted on), test against
        train + validation (what the final models are fitted on)."""
        found = {"val": cold(self.ratings, self.split.train, self.split.val)}
        if len(self.split.test):
            found["test"] = cold(self.ratings, self.split.refit_rows(), self.split.test)
        return found

    def summary(self) -> dict:
        """What a reader needs to know about the data and the protocol, as JSON-ready values."""
        info = summary(self.ratings, self.split)
        info["protocol"] = {"split": self.settings.split, "about": describe(self.split, self.settings)}
        info["protocol"].update({k: v for k, v in self.split.about.items() if k != "kind"})
        info["protocol"]["cold"] = self.cold()
        if self.filtered is not None:
            info["filters"] = {**self.settings.filters, "before": self.filtered.before, "after": self.filtered.after}
            info["filters"]["rounds"] = self.filtered.rounds
        return info

    def lines(self) -> list[str]:
        """What a reader should know of the protocol, one line each: the split, the filters, the cold rows."""
        sizes = self.split.sizes()
        out = [f"split {describe(self.split, self.settings)}: " + ", ".join(f"{v:,} {k}" for k, v in sizes.items())]
        if self.filtered is not None:
            out.append(self.filtered.sentence())
        if self.ratings.repeats:
            out.append(f"implicit feedback: {self.ratings.repeats:,} repeated interactions merged into their first")
        for part, counts in self.cold().items():
            if counts["rows"]:
                fitted = "train" if part == "val" else "train + validation"
                out.append(
                    f"cold {'validation' if part == 'val' else 'test'} rows (no {fitted} row of their user or movie): "
                    f"{counts['rows']:,} of {counts['of_rows']:,}; {counts['users']:,} users of {counts['of_users']:,} "
                    f"and {counts['movies']:,} movies of {counts['of_movies']:,} have none"
                )
        if self.split.about.get("users_whole"):
            out.append(
                f"{self.split.about['users_whole']:,} users have too few ratings to hold out "
                f"{self.settings.holdout} twice and stay whole in train"
            )
        return out


def load_dataset(settings: DataConfig) -> Dataset:
    """The experiment's ratings, read, filtered and split as its `[data]` says."""
    ratings = load_ratings(settings.ratings, settings.columns or None, settings.separator, settings.header)
    return dataset_of(ratings, settings)


def dataset_of(ratings: Ratings, settings: DataConfig) -> Dataset:
    """Ratings as read, filtered and split as `settings` say."""
    filtered = None
    if settings.filters:
        ratings, filtered = filters.apply(
            ratings, settings.min_user_ratings, settings.min_movie_ratings, settings.k_core
        )
    return Dataset(ratings, split_of(ratings, settings), settings, filtered)


def split_of(ratings: Ratings, settings: DataConfig) -> Split:
    if settings.split == "random":
        return splits.split_rows(len(ratings.frame), settings.val_pct, settings.test_pct, settings.seed)
    timestamps = ratings.timestamps
    if timestamps is None:
        raise UserError(
            f"{ratings.source} has no timestamps, and split {settings.split!r} orders ratings by time: use split "
            '"random", or name its timestamp column in [data] columns'
        )
    if settings.split == "temporal":
        return splits.temporal(timestamps, settings.val_pct, settings.test_pct)
    return splits.user_last(ratings.frame.user.to_numpy(), timestamps, settings.holdout)


def describe(split: Split, settings: DataConfig) -> str:
    """The split's kind and settings, in a few words."""
    kind = split.about.get("kind", settings.split)
    if kind == "user-last":
        return f"user-last (each user's last {settings.holdout} test, the {settings.holdout} before validation)"
    shares = f"validation {settings.val_pct:g}"
    if settings.test_pct > 0:
        shares = f"test {settings.test_pct:g}, validation {settings.val_pct:g} of the rest"
    if kind == "temporal":
        return f"temporal ({shares}, the latest by time)"
    return f"random ({shares}, seed {settings.seed})"


def cold(ratings: Ratings, fitted: np.ndarray, scored: np.ndarray) -> dict[str, int]:
    """Of the `scored` rows: how many have a user or a movie with no `fitted` row, and how many such users and
    movies there are (out of the scored part's users and movies)."""
    users, movies = ratings.frame.user.to_numpy(), ratings.frame.movie.to_numpy()
    known_user = np.zeros(ratings.n_users, dtype=bool)
    known_movie = np.zeros(ratings.n_movies, dtype=bool)
    known_user[users[fitted]] = True
    known_movie[movies[fitted]] = True
    scored_users, scored_movies = np.unique(users[scored]), np.unique(movies[scored])
    return {
        "rows": int((~known_user[users[scored]] | ~known_movie[movies[scored]]).sum()),
        "of_rows": len(scored),
        "users": int((~known_user[scored_users]).sum()),
        "of_users": len(scored_users),
        "movies": int((~known_movie[scored_movies]).sum()),
        "of_movies": len(scored_movies),
    }
