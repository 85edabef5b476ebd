"""Ratings: loading (the embedded dataset, a fetched release, a MovieLens file or any interaction file), id encoding,
crosstab and summary. The splits are in cfexp.data.splits (re-exported here), the checks in cfexp.data.checks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cfexp.config.data_table import RELEASE_NAME
from cfexp.data import interactions, movielens, releases
from cfexp.data.checks import REQUIRED_COLUMNS, validated
from cfexp.data.splits import Split, lesson_val_idxs, split_rows
from cfexp.errors import UserError

BUILTIN = "ml-latest-small"
__all__ = ["REQUIRED_COLUMNS", "Ratings", "Split", "TensorPart", "lesson_val_idxs", "load_ratings", "split_rows"]


@dataclass(frozen=True)
class Ratings:
    """A ratings table with ids encoded to contiguous indices (`user`, `movie` columns) and both maps kept; a
    `timestamp` column (seconds) where the file has one."""

    frame: pd.DataFrame
    user_ids: np.ndarray
    movie_ids: np.ndarray
    titles: pd.Series | None
    source: str
    implicit: bool = False  # the file has no rating column: every row is a positive, rated 1.0
    repeats: int = 0  # implicit interactions of a pair seen before, merged into its first (cfexp.data.checks)

    @property
    def timestamps(self) -> np.ndarray | None:
        return self.frame.timestamp.to_numpy() if "timestamp" in self.frame else None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_movies(self) -> int:
        return len(self.movie_ids)

    @property
    def rating_range(self) -> tuple[float, float]:
        return float(self.frame.rating.min()), float(self.frame.rating.max())

    @cached_property
    def digest(self) -> str:
        """A content digest of (userId, movieId, rating) in file order: same data, same digest, whatever the format."""
        h = hashlib.sha256()
        for column, dtype in (("userId", np.int64), ("movieId", np.int64), ("rating", np.float64)):
            values = self.frame[column]
            if values.dtype == object:  # ids the file names by text
                h.update("\x1f".join(values).encode())
            else:
                h.update(np.ascontiguousarray(values.to_numpy(dtype)).tobytes())
        return h.hexdigest()[:16]

    @cached_property
    def timestamps_digest(self) -> str | None:
        """A digest of the timestamps in file order (what a time-aware split also depends on)."""
        if self.timestamps is None:
            return None
        return hashlib.sha256(np.ascontiguousarray(self.timestamps, dtype=np.int64).tobytes()).hexdigest()[:16]

    def held_out(self, rows: np.ndarray) -> pd.DataFrame:
        """The rows as a model is asked to rate them: userId, movieId and rating, and timestamp where there is one."""
        columns = ["userId", "movieId", "rating"] + (["timestamp"] if "timestamp" in self.frame else [])
        return self.frame.iloc[rows][columns]

    def decode(self, users: np.ndarray, movies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map encoded indices back to the original userId and movieId."""
        return self.user_ids[np.asarray(users)], self.movie_ids[np.asarray(movies)]

    def encode_movies(self, movie_ids: np.ndarray) -> np.ndarray:
        """Map movieIds to encoded indices (-1 where unknown)."""
        return pd.Index(self.movie_ids).get_indexer(np.asarray(movie_ids))

    def title(self, movie_id: int) -> str:
        if self.titles is not None and movie_id in self.titles.index:
            return str(self.titles[movie_id])
        return f"movie {movie_id}"


def load_ratings(
    source: str | Path | None = None, columns: dict | None = None, separator: str = ",", header: bool = True
) -> Ratings:
    """Load ratings from the embedded dataset (None or "ml-latest-small"), a fetched release by name ("ml-1m"), any
    MovieLens release's folder, zip or ratings file (cfexp.data.movielens), or, with `columns`, any delimited
    interaction file (cfexp.data.interactions)."""
    if columns:
        frame = interactions.read(Path(source), columns, separator, header)
        return _encode(frame, None, str(source), generic=True)
    if source is None or str(source) == BUILTIN:
        with resources.as_file(resources.files("cfexp.datasets") / f"{BUILTIN}.zip") as embedded:
            return _encode(*movielens.read(Path(embedded)), BUILTIN)
    if str(source) in releases.BY_NAME:
        return _encode(*movielens.read(releases.cached(str(source))), str(source))
    if RELEASE_NAME.fullmatch(str(source)) and not Path(source).exists():
        raise UserError(
            f"unknown release {source!r}: an experiment names {', '.join(releases.BY_NAME)} (fetched), or "
            f"{BUILTIN} (embedded); a file or folder of that name is written ./{source}"
        )
    # The raw table goes straight into _encode, which drops it once encoded: at 25M ratings it is 600 MB.
    return _encode(*movielens.read(Path(source)), str(source))


def _encode(ratings: pd.DataFrame, movies: pd.DataFrame | None, source: str, generic: bool = False) -> Ratings:
    implicit = generic and "rating" not in ratings.columns
    frame, repeats = validated(ratings, source, generic)
    del ratings
    return encoded(frame, movies, source, implicit, repeats)


def encoded(frame: pd.DataFrame, movies, source: str, implicit: bool = False, repeats: int = 0) -> Ratings:
    """Ratings of a checked frame: ids numbered in order of first appearance, titles where given."""
    # factorize keeps first-appearance order, the same numbering as the lesson's {id: i for i, id in enumerate(unique)}
    users, user_ids = pd.factorize(frame.userId)
    movie_codes, movie_ids = pd.factorize(frame.movieId)
    # int32 codes: half the memory at 25M ratings (tensors() widens the rows it takes to torch's int64 indices)
    frame = frame.assign(user=users.astype(np.int32), movie=movie_codes.astype(np.int32))
    titles = None
    if isinstance(movies, pd.Series):
        titles = movies
    elif movies is not None and {"movieId", "title"} <= set(movies.columns):
        titles = movies.drop_duplicates("movieId").set_index("movieId")["title"]
    return Ratings(frame, np.asarray(user_ids), np.asarray(movie_ids), titles, source, implicit, repeats)


def crosstab(ratings: Ratings, top: int = 15) -> pd.DataFrame:
    """The lesson's table: the `top` busiest users by the `top` most-rated movies, with their ratings."""
    frame = ratings.frame
    top_users = frame.groupby("userId").rating.count().sort_values(ascending=False, kind="stable")[:top]
    top_movies = frame.groupby("movieId").rating.count().sort_values(ascending=False, kind="stable")[:top]
    rows = frame[frame.userId.isin(top_users.index) & frame.movieId.isin(top_movies.index)]
    return rows.pivot_table(index="userId", columns="movieId", values="rating", aggfunc="sum")


def summary(ratings: Ratings, split: Split | None = None) -> dict:
    """What a reader needs to know about the data, as JSON-ready values."""
    low, high = ratings.rating_range
    info = {
        "source": ratings.source,
        "users": ratings.n_users,
        "movies": ratings.n_movies,
        "ratings": len(ratings.frame),
        "rating_min": low,
        "rating_max": high,
        "digest": ratings.digest,
    }
    if ratings.implicit:
        info["implicit"] = True
    if ratings.repeats:
        info["repeats_merged"] = ratings.repeats
    if ratings.timestamps is not None:
        info["time_from"], info["time_to"] = int(ratings.timestamps.min()), int(ratings.timestamps.max())
    if split is not None:
        info["split"] = split.sizes()
    return info


@dataclass(frozen=True)
class TensorPart:
    """One part of a split as device tensors: encoded users, movies and float32 ratings, and each rating's time
    (int64 seconds) where the data have timestamps, so that a trainer, cfexp's or a user's, can be time-aware."""

    users: torch.Tensor
    movies: torch.Tensor
    ratings: torch.Tensor
    times: torch.Tensor | None = None
    # what trainers derive from the part (sparse layouts, cfexp.fit.sparse), kept for the next trial fitted on it
    derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ratings)


def tensors(ratings: Ratings, rows: np.ndarray, device: torch.device | str = "cpu") -> TensorPart:
    frame = ratings.frame
    stamps = ratings.timestamps
    return TensorPart(
        users=torch.as_tensor(frame.user.to_numpy()[rows].astype(np.int64), device=device),
        movies=torch.as_tensor(frame.movie.to_numpy()[rows].astype(np.int64), device=device),
        ratings=torch.as_tensor(frame.rating.to_numpy(np.float32)[rows], device=device),
        times=None if stamps is None else torch.as_tensor(stamps[rows], device=device),
    )
