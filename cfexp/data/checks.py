"""A ratings table checked before anything uses it: the columns there, every value of the right kind (an error names
the first bad row), and each (user, movie) pair once.

Ids are integers in a MovieLens file; an interaction file of another layout may name its users and items by text,
kept as the file writes them. Timestamps, where there are some, are whole seconds. A repeated pair is an error where
there are ratings (which one would count?); in implicit feedback (no rating column) the repeats are
merged into the pair's first interaction in time (the file's order where there are no timestamps), and counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfexp.errors import UserError

REQUIRED_COLUMNS = ("userId", "movieId", "rating")


def validated(ratings: pd.DataFrame, source: str, generic: bool = False) -> tuple[pd.DataFrame, int]:
    """The checked frame (userId, movieId, rating and, where given, timestamp) and how many implicit repeats were
    merged. A `generic` interaction file (not a MovieLens layout) may name ids by text and have no rating column:
    then it is implicit feedback, and every row gets rating 1.0."""
    implicit = "rating" not in ratings.columns and generic
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings.columns and not (c == "rating" and implicit)]
    if missing:
        raise UserError(f"{source} is missing column(s) {', '.join(missing)} (needs userId,movieId,rating)")
    if len(ratings) < 2:
        raise UserError(f"{source} has {len(ratings)} rating(s); at least 2 are needed")
    columns = [c for c in (*REQUIRED_COLUMNS, "timestamp") if c in ratings.columns]
    frame = pd.DataFrame(
        {c: _checked_column(ratings[c].reset_index(drop=True), c, source, generic) for c in columns}, copy=False
    )
    if implicit:
        frame.insert(2, "rating", np.ones(len(frame)))
        return _merged_repeats(frame)
    if _has_duplicate_pairs(frame):
        dupes = frame.duplicated(["userId", "movieId"])
        row = int(np.flatnonzero(dupes.to_numpy())[0])
        user, movie = frame.userId.iloc[row], frame.movieId.iloc[row]
        raise UserError(
            f"{source}: {int(dupes.sum())} duplicate (userId, movieId) pair(s), first user {user} movie {movie} "
            f"on data row {row + 1}"
        )
    return frame, 0


def _merged_repeats(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Each (user, item) pair's first interaction in time, the file's order kept for the rest."""
    if not _has_duplicate_pairs(frame):
        return frame, 0
    if "timestamp" in frame:
        order = np.argsort(frame.timestamp.to_numpy(), kind="stable")
        repeat = np.empty(len(frame), dtype=bool)
        repeat[order] = frame.iloc[order].duplicated(["userId", "movieId"]).to_numpy()
    else:
        repeat = frame.duplicated(["userId", "movieId"]).to_numpy()
    return frame[~repeat].reset_index(drop=True), int(repeat.sum())


def _checked_column(column: pd.Series, name: str, source: str, text_ids: bool) -> pd.Series:
    """Ids as integers (int32 when they fit) or, where allowed, text; ratings as finite float64; timestamps as
    int64 seconds. A bad value is an error naming its row."""
    if name in ("userId", "movieId") and text_ids and not pd.api.types.is_integer_dtype(column.dtype):
        empty = column.isna() | (column.astype(str).str.strip() == "")
        if empty.any():
            raise UserError(f"{source}: empty {name} on data row {int(np.flatnonzero(empty.to_numpy())[0]) + 1}")
        return column.astype(str).astype(object)  # plain Python strings, whatever the parser's string type
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
    if name == "timestamp":
        return values.astype(np.int64)
    small = values.min() >= np.iinfo(np.int32).min and values.max() <= np.iinfo(np.int32).max
    return values.astype(np.int32 if small else np.int64)


def _has_duplicate_pairs(frame: pd.DataFrame) -> bool:
    """Whether a (userId, movieId) pair repeats: one int64 key per row, sorted (seconds at 25M rows)."""
    if not all(pd.api.types.is_integer_dtype(frame[c].dtype) for c in ("userId", "movieId")):
        return bool(frame.duplicated(["userId", "movieId"]).any())
    users, movies = frame.userId.to_numpy(np.int64), frame.movieId.to_numpy(np.int64)
    low, span = movies.min(), int(movies.max() - movies.min()) + 1
    if users.min() < 0 or (int(users.max()) + 1) * span >= 2**62:
        return bool(frame.duplicated(["userId", "movieId"]).any())
    keys = users * span
    keys += movies - low
    keys.sort()
    return bool((keys[1:] == keys[:-1]).any())
