"""Ratings: loading (the embedded dataset or a path), id encoding, the lesson's split, crosstab and summary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from cfexp.data import movielens
from cfexp.errors import UserError

BUILTIN = "ml-latest-small"
REQUIRED_COLUMNS = ("userId", "movieId", "rating")


@dataclass(frozen=True)
class Ratings:
    """A ratings table with ids encoded to contiguous indices (`user`, `movie` columns) and both maps kept."""

    frame: pd.DataFrame
    user_ids: np.ndarray
    movie_ids: np.ndarray
    titles: pd.Series | None
    source: str

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
            h.update(np.ascontiguousarray(self.frame[column].to_numpy(dtype)).tobytes())
        return h.hexdigest()[:16]

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


@dataclass(frozen=True)
class Split:
    """Row indices into `Ratings.frame` for each part; `test` is empty unless a test_pct was asked for.

    Train fits, validation selects (epochs, pruning, the sampler, the best trial), and test scores once the
    best configuration refit on train + validation (`refit_rows`)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def search(self) -> Split:
        """What a search may see: train and validation, no test row."""
        return Split(self.train, self.val, np.array([], dtype=np.int64))

    def refit_rows(self) -> np.ndarray:
        """What the final fit trains on: train + validation."""
        return np.sort(np.concatenate([self.train, self.val]))


def load_ratings(source: str | Path | None = None) -> Ratings:
    """Load ratings from the embedded dataset (None or "ml-latest-small"), or any MovieLens release's folder, zip
    or ratings file (see cfexp.data.movielens)."""
    if source is None or str(source) == BUILTIN:
        with resources.as_file(resources.files("cfexp.datasets") / f"{BUILTIN}.zip") as embedded:
            return _encode(*movielens.read(Path(embedded)), BUILTIN)
    # The raw table goes straight into _encode, which drops it once encoded: at 25M ratings it is 600 MB.
    return _encode(*movielens.read(Path(source)), str(source))


def _encode(ratings: pd.DataFrame, movies: pd.DataFrame | None, source: str) -> Ratings:
    frame = _validated(ratings, source)
    del ratings
    # factorize keeps first-appearance order, the same numbering as the lesson's {id: i for i, id in enumerate(unique)}
    users, user_ids = pd.factorize(frame.userId)
    movie_codes, movie_ids = pd.factorize(frame.movieId)
    # int32 codes: half the memory at 25M ratings (tensors() widens the rows it takes to torch's int64 indices)
    frame = frame.assign(user=users.astype(np.int32), movie=movie_codes.astype(np.int32))
    titles = None
    if movies is not None and {"movieId", "title"} <= set(movies.columns):
        titles = movies.drop_duplicates("movieId").set_index("movieId")["title"]
    return Ratings(frame, np.asarray(user_ids), np.asarray(movie_ids), titles, source)


def _validated(ratings: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns]
    if missing:
        raise UserError(f"{source} is missing column(s) {', '.join(missing)} (needs userId,movieId,rating)")
    if len(ratings) < 2:
        raise UserError(f"{source} has {len(ratings)} rating(s); at least 2 are needed")
    frame = pd.DataFrame(
        {c: _checked_column(ratings[c].reset_index(drop=True), c, source) for c in REQUIRED_COLUMNS}, copy=False
    )
    if _has_duplicate_pairs(frame):
        dupes = frame.duplicated(["userId", "movieId"])
        row = int(np.flatnonzero(dupes.to_numpy())[0])
        user, movie = frame.userId.iloc[row], frame.movieId.iloc[row]
        raise UserError(
            f"{source}: {int(dupes.sum())} duplicate (userId, movieId) pair(s), first user {user} movie {movie} "
            f"on data row {row + 1}"
        )
    return frame


def _checked_column(column: pd.Series, name: str, source: str) -> pd.Series:
    """Ids as integers (int32 when they fit), ratings as finite float64; a bad value is an error naming its row."""
    if pd.api.types.is_integer_dtype(column.dtype):  # integers parsed as such cannot be NaN, infinite or fractional
        values = column
    else:
        values = pd.to_numeric(column, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(np.float64, na_value=np.nan))
        if name != "rating":
            bad |= values.fillna(0) % 1 != 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raw = column.iloc[row]
            shown = "(empty)" if pd.isna(raw) else repr(str(raw))
            raise UserError(f"{source}: bad {name} {shown} on data row {row + 1}")
    if name == "rating":
        return values.astype(np.float64)  # no copy when it is float64 already (copy on write)
    small = values.min() >= np.iinfo(np.int32).min and values.max() <= np.iinfo(np.int32).max
    return values.astype(np.int32 if small else np.int64)


def _has_duplicate_pairs(frame: pd.DataFrame) -> bool:
    """Whether a (userId, movieId) pair repeats: one int64 key per row, sorted (seconds at 25M rows)."""
    users, movies = frame.userId.to_numpy(np.int64), frame.movieId.to_numpy(np.int64)
    low, span = movies.min(), int(movies.max() - movies.min()) + 1
    if users.min() < 0 or (int(users.max()) + 1) * span >= 2**62:
        return bool(frame.duplicated(["userId", "movieId"]).any())
    keys = users * span
    keys += movies - low
    keys.sort()
    return bool((keys[1:] == keys[:-1]).any())


def lesson_val_idxs(n: int, val_pct: float = 0.2, seed: int = 42) -> np.ndarray:
    """fastai 0.7's get_cv_idxs: np.random.seed(seed); permutation(n)[:int(val_pct * n)], without global state."""
    return np.random.RandomState(seed).permutation(n)[: int(val_pct * n)]


def split_rows(n: int, val_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42) -> Split:
    """Three parts of n rows (the protocol in docs/evaluation.md).

    With a test split, the test rows are fastai's get_cv_idxs(n, test_pct, seed), which at 0.2 and seed 42 are the
    lesson's validation rows, and validation is a seeded draw of val_pct of the other rows. Without one (the seed
    reproduction), validation is get_cv_idxs(n, val_pct, seed): the lesson's split exactly."""
    free = np.ones(n, dtype=bool)  # masks, not set differences: a set difference sorts, slowly, at 25M rows
    if test_pct > 0:
        test = np.sort(lesson_val_idxs(n, test_pct, seed))
        free[test] = False
        rest = np.flatnonzero(free)
        # its own stream of the seed: the test draw and the validation draw must not share random numbers
        picked = np.random.default_rng([seed, 1]).permutation(len(rest))[: int(val_pct * len(rest))]
        val = np.sort(rest[picked])
    else:
        test = np.array([], dtype=np.int64)
        val = lesson_val_idxs(n, val_pct, seed)
    free[val] = False
    train = np.flatnonzero(free)
    if len(train) == 0 or len(val) == 0 or (test_pct > 0 and len(test) == 0):
        raise UserError(f"{n} ratings leave an empty part at val_pct={val_pct}, test_pct={test_pct}")
    return Split(train=train, val=val, test=test)


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
    if split is not None:
        info["split"] = split.sizes()
    return info


@dataclass(frozen=True)
class TensorPart:
    """One part of a split as device tensors: encoded users, movies and float32 ratings."""

    users: torch.Tensor
    movies: torch.Tensor
    ratings: torch.Tensor

    def __len__(self) -> int:
        return len(self.ratings)


def tensors(ratings: Ratings, rows: np.ndarray, device: torch.device | str = "cpu") -> TensorPart:
    frame = ratings.frame
    return TensorPart(
        users=torch.as_tensor(frame.user.to_numpy()[rows].astype(np.int64), device=device),
        movies=torch.as_tensor(frame.movie.to_numpy()[rows].astype(np.int64), device=device),
        ratings=torch.as_tensor(frame.rating.to_numpy(np.float32)[rows], device=device),
    )
