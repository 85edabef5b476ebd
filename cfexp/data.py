"""Ratings: loading (the embedded dataset or a path), id encoding, the lesson's split, crosstab and summary."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

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
    """Row indices into `Ratings.frame` for each part; `test` is empty unless a test_pct was asked for."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_ratings(source: str | Path | None = None) -> Ratings:
    """Load ratings from the embedded dataset (None or "ml-latest-small"), a ratings.csv, a folder or a zip."""
    if source is None or str(source) == BUILTIN:
        with resources.files("cfexp.datasets").joinpath(f"{BUILTIN}.zip").open("rb") as fh:
            ratings, movies = _read_zip(io.BytesIO(fh.read()), BUILTIN)
        return _encode(ratings, movies, BUILTIN)
    path = Path(source)
    if not path.exists():
        raise UserError(f"ratings not found: {path}")
    if path.is_dir():
        ratings_path = path / "ratings.csv"
        if not ratings_path.exists():
            raise UserError(f"no ratings.csv in {path}")
        ratings = _read_csv(ratings_path, str(ratings_path))
        movies_path = path / "movies.csv"
        movies = _read_csv(movies_path, str(movies_path)) if movies_path.exists() else None
    elif zipfile.is_zipfile(path):
        ratings, movies = _read_zip(path, str(path))
    else:
        ratings = _read_csv(path, str(path))
        movies_path = path.with_name("movies.csv")
        movies = _read_csv(movies_path, str(movies_path)) if movies_path.exists() else None
    return _encode(ratings, movies, str(path))


def _read_zip(file, label: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    with zipfile.ZipFile(file) as zf:
        names = {Path(n).name: n for n in zf.namelist()}
        if "ratings.csv" not in names:
            raise UserError(f"no ratings.csv inside {label}")
        with zf.open(names["ratings.csv"]) as fh:
            ratings = _read_csv(fh, f"{label}:ratings.csv")
        movies = None
        if "movies.csv" in names:
            with zf.open(names["movies.csv"]) as fh:
                movies = _read_csv(fh, f"{label}:movies.csv")
    return ratings, movies


def _read_csv(file, label: str) -> pd.DataFrame:
    try:
        return pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read {label}: {reason}") from None


def _encode(ratings: pd.DataFrame, movies: pd.DataFrame | None, source: str) -> Ratings:
    frame = _validated(ratings, source)
    # factorize keeps first-appearance order, the same numbering as the lesson's {id: i for i, id in enumerate(unique)}
    users, user_ids = pd.factorize(frame.userId)
    movie_codes, movie_ids = pd.factorize(frame.movieId)
    frame = frame.assign(user=users.astype(np.int64), movie=movie_codes.astype(np.int64))
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
    frame = ratings.reset_index(drop=True)
    for column in REQUIRED_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(np.float64, na_value=np.nan))
        if column != "rating":
            bad |= values.fillna(0) % 1 != 0
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raw = frame[column].iloc[row]
            shown = "(empty)" if pd.isna(raw) else repr(str(raw))
            raise UserError(f"{source}: bad {column} {shown} on data row {row + 1}")
        frame[column] = values.astype(np.float64 if column == "rating" else np.int64)
    dupes = frame.duplicated(["userId", "movieId"])
    if dupes.any():
        row = int(np.flatnonzero(dupes.to_numpy())[0])
        user, movie = frame.userId.iloc[row], frame.movieId.iloc[row]
        raise UserError(
            f"{source}: {int(dupes.sum())} duplicate (userId, movieId) pair(s), first user {user} movie {movie} "
            f"on data row {row + 1}"
        )
    return frame


def lesson_val_idxs(n: int, val_pct: float = 0.2, seed: int = 42) -> np.ndarray:
    """fastai 0.7's get_cv_idxs: np.random.seed(seed); permutation(n)[:int(val_pct * n)], without global state."""
    return np.random.RandomState(seed).permutation(n)[: int(val_pct * n)]


def split_rows(n: int, val_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42) -> Split:
    """The lesson's validation rows, and optionally a test set (test_pct of all rows) carved from the rest."""
    val = lesson_val_idxs(n, val_pct, seed)
    rest = np.setdiff1d(np.arange(n), val)
    n_test = int(test_pct * n)
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(rest, size=n_test, replace=False)) if n_test else np.array([], dtype=np.int64)
    train = np.setdiff1d(rest, test)
    if len(train) == 0 or len(val) == 0:
        raise UserError(f"{n} ratings leave an empty train or validation set at val_pct={val_pct}")
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
        users=torch.as_tensor(frame.user.to_numpy()[rows], device=device),
        movies=torch.as_tensor(frame.movie.to_numpy()[rows], device=device),
        ratings=torch.as_tensor(frame.rating.to_numpy(np.float32)[rows], device=device),
    )
