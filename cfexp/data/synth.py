"""Synthetic ratings shaped like a MovieLens release, written as a ratings.csv chunk by chunk (never whole in memory).

The shape is the release's: its exact numbers of ratings, users and movies, at least 20 ratings per user as
GroupLens requires, every movie rated at least once, and its rating histogram (half stars for ml-25m). Users'
activity is log-normal (median about 71 ratings, as in ml-25m) and movies' popularity Zipf-Mandelbrot,
(rank + 170)^-2.4, sampled without replacement per user, which gives the most-rated movie about 79k ratings
(ml-25m's has 81k) and the median movie about 20. The ratings are not noise: each comes from a user bias, a movie
bias and a rank-8 taste product, and is mapped onto the histogram by its rank within its chunk, so that factor
models have something to learn. Seeded: the same seed writes the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from cfexp.errors import UserError

CHUNK_USERS = 16_384
HEAVY = 1_000  # ratings per user above which a user's movies are drawn by Gumbel top-k
TASTE_RANK = 8
EPOCH_2000, EPOCH_2019 = 946_684_800, 1_574_300_000  # the span of ml-25m's timestamps, in seconds


@dataclass(frozen=True)
class Shape:
    ratings: int
    users: int
    movies: int
    max_movie_id: int
    histogram: dict[float, int]  # rating -> how many
    popularity: tuple[float, float] = (170.0, 2.4)  # Zipf-Mandelbrot (offset, exponent), fitted to the release

    @property
    def min_per_user(self) -> int:
        return 20


SHAPES = {
    "ml-25m": Shape(
        25_000_095,
        162_541,
        59_047,
        209_171,
        {
            0.5: 393_068,
            1.0: 776_815,
            1.5: 399_490,
            2.0: 1_640_868,
            2.5: 1_262_797,
            3.0: 4_896_928,
            3.5: 3_177_318,
            4.0: 6_639_798,
            4.5: 2_200_539,
            5.0: 3_612_474,
        },
    ),
    # the smaller releases' most-rated movies have 3,428 ratings (ml-1m) and 583 (ml-100k), their medians 123 and 27
    "ml-1m": Shape(
        1_000_209,
        6_040,
        3_706,
        3_952,
        {1.0: 56_174, 2.0: 107_557, 3.0: 261_197, 4.0: 348_971, 5.0: 226_310},
        (30, 1.3),
    ),
    "ml-100k": Shape(
        100_000, 943, 1_682, 1_682, {1.0: 6_110, 2.0: 11_370, 3.0: 27_145, 4.0: 34_174, 5.0: 21_201}, (30, 2.2)
    ),
}


def write(shape_name: str, out: Path, seed: int = 42) -> dict:
    """Write OUT (a ratings.csv: userId,movieId,rating,timestamp); returns what was written."""
    if shape_name not in SHAPES:
        raise UserError(f"unknown shape {shape_name!r}; known: {', '.join(SHAPES)}")
    shape = SHAPES[shape_name]
    rng = np.random.default_rng(seed)
    counts = _user_counts(shape, rng)
    popularity = _popularity(shape.movies, *shape.popularity, rng)
    movie_ids = np.sort(rng.choice(np.arange(1, shape.max_movie_id + 1), shape.movies, replace=False))
    covering_user = rng.integers(0, shape.users, shape.movies)  # every movie gets one rating from this user
    user_taste = rng.normal(0, 0.35, (shape.users, TASTE_RANK + 1)).astype(np.float32)
    movie_taste = rng.normal(0, 0.35, (shape.movies, TASTE_RANK + 1)).astype(np.float32)
    levels = sorted(shape.histogram)
    cumulative = np.cumsum([shape.histogram[r] for r in levels]) / shape.ratings
    spelled = pa.array([f"{r:.1f}" for r in levels])  # as GroupLens writes them: 4.0, 3.5
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with tmp.open("wb") as fh:
            fh.write(b"userId,movieId,rating,timestamp\n")
            for start in range(0, shape.users, CHUNK_USERS):
                users = np.arange(start, min(start + CHUNK_USERS, shape.users))
                pairs = _chunk_pairs(users, counts, popularity, covering_user, rng)
                score = _scores(pairs, user_taste, movie_taste, rng)
                rank = np.empty(len(score))
                rank[np.argsort(score, kind="stable")] = (np.arange(len(score)) + 0.5) / len(score)
                level = np.searchsorted(cumulative, rank, side="right").clip(max=len(levels) - 1).astype(np.int8)
                chunk = pa.table(
                    {
                        "userId": pairs[:, 0] + 1,
                        "movieId": movie_ids[pairs[:, 1]],
                        "rating": pa.DictionaryArray.from_arrays(pa.array(level), spelled),
                        "timestamp": rng.integers(EPOCH_2000, EPOCH_2019, len(pairs)),
                    }
                )
                pa_csv.write_csv(chunk, fh, options)
        tmp.replace(out)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    return {"shape": shape_name, "ratings": int(counts.sum()), "users": shape.users, "movies": shape.movies}


def _user_counts(shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: log-normal (median 71, as ml-25m's), at least 20, summing exactly to the release's."""
    raw = rng.lognormal(np.log(71), 1.24, shape.users)
    low, high = shape.min_per_user, shape.movies // 2
    counts = np.clip(np.round(raw * shape.ratings / raw.sum()), low, high).astype(np.int64)
    for _ in range(100):  # clipping moved the total: spread the difference over the users who can take it
        short = shape.ratings - int(counts.sum())
        if short == 0:
            return counts
        room = np.flatnonzero(counts < high) if short > 0 else np.flatnonzero(counts > low)
        chosen = rng.choice(room, min(abs(short), len(room)), replace=False)
        counts[chosen] += np.sign(short)
    raise AssertionError("could not reach the exact number of ratings")


def _popularity(movies: int, offset: float, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Zipf-Mandelbrot weights, (rank + offset)^-exponent, in a random order over the movies."""
    weights = (np.arange(1, movies + 1) + offset) ** -exponent
    return rng.permutation(weights / weights.sum())


def _chunk_pairs(users, counts, popularity, covering_user, rng) -> np.ndarray:
    """(user, movie) index pairs for a block of users: each user's own count of distinct movies, drawn without
    replacement by popularity, including the movies this user covers. Sorted by user, then movie.

    Light users draw with replacement and drop repeats, round after round; a heavy user (over HEAVY ratings) would
    mostly redraw the head, so it takes the top of popularity-perturbed Gumbel keys: exact weighted sampling
    without replacement, at one pass over the catalogue per heavy user."""
    n_movies = len(popularity)
    need = counts[users]
    covered = np.flatnonzero((covering_user >= users[0]) & (covering_user <= users[-1]))
    keys = [covering_user[covered] * n_movies + covered]
    log_popularity = np.log(popularity)
    for user in users[need > HEAVY]:
        gumbel = log_popularity - np.log(-np.log(rng.random(n_movies)))
        keys.append(user * n_movies + np.argpartition(gumbel, -need[user - users[0]])[-need[user - users[0]] :])
    keys = _distinct(np.concatenate(keys))
    cdf = np.cumsum(popularity)
    for round_ in range(64):
        have = np.bincount(keys // n_movies - users[0], minlength=len(users))
        short = need - np.minimum(have, need)
        if not short.any():
            break
        draws = (short * 1.15 + 4).astype(np.int64)
        owners = np.repeat(users, draws)
        movies = np.searchsorted(cdf, rng.random(len(owners)) * cdf[-1]).clip(max=n_movies - 1)
        if round_ >= 8:  # the few still short after eight rounds finish from the whole catalogue
            movies = rng.integers(0, n_movies, len(owners))
        keys = _distinct(np.concatenate([keys, owners * n_movies + movies]))
    # Keep each user's first `need` movies in a random order (covered movies first, so every movie stays rated).
    owner = keys // n_movies
    cover = covering_user[keys % n_movies] == owner
    priority = np.where(cover, -1.0, rng.random(len(keys)))
    order = np.lexsort((priority, owner))
    position = np.arange(len(order)) - np.searchsorted(owner[order], owner[order])
    kept = np.sort(keys[order][position < need[owner[order] - users[0]]])
    return np.stack([kept // n_movies, kept % n_movies], 1)


def _distinct(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct keys (a sort and a mask: numpy 2's hashing np.unique is several times slower here)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def _scores(pairs: np.ndarray, user_taste: np.ndarray, movie_taste: np.ndarray, rng) -> np.ndarray:
    """Bias + taste + noise for each pair (the last taste column is each side's bias)."""
    u, m = user_taste[pairs[:, 0]], movie_taste[pairs[:, 1]]
    taste = np.einsum("ij,ij->i", u[:, :-1], m[:, :-1])
    return u[:, -1] * 2 + m[:, -1] * 2 + taste + rng.normal(0, 0.5, len(pairs)).astype(np.float32)
