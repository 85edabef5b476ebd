"""The three ways to cut ratings into train, validation and test, each a pure function of the rows and its settings
(docs/evaluation.md states them precisely enough to reproduce):

- `random`: the lesson's seeded draw (fastai's get_cv_idxs for test; validation its own seeded stream);
- `temporal`: one global time cut for test, another for validation, ties at a cut held out;
- `user-last`: per user, by time, the last `holdout` ratings test and the ones before them validation.

Time order is by timestamp, with ties in the order of the file (a stable sort): of two ratings at the same second,
the one later in the file is the later one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from cfexp.errors import UserError

KINDS = ("random", "temporal", "user-last")
TIMED = ("temporal", "user-last")  # the splits that order ratings by time


@dataclass(frozen=True)
class Split:
    """Row indices into `Ratings.frame` for each part; `test` is empty unless a test part was asked for.

    Train fits, validation selects (epochs, pruning, the sampler, the best trial), and test scores once the
    best configuration refit on train + validation (`refit_rows`). `about` says how it was cut (the kind, the time
    cuts, the users kept whole), for reports."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    about: dict = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def search(self) -> Split:
        """What a search may see: train and validation, no test row."""
        return Split(self.train, self.val, np.array([], dtype=np.int64), self.about)

    def refit_rows(self) -> np.ndarray:
        """What the final fit trains on: train + validation."""
        return np.sort(np.concatenate([self.train, self.val]))


def lesson_val_idxs(n: int, val_pct: float = 0.2, seed: int = 42) -> np.ndarray:
    """fastai 0.7's get_cv_idxs: np.random.seed(seed); permutation(n)[:int(val_pct * n)], without global state."""
    return np.random.RandomState(seed).permutation(n)[: int(val_pct * n)]


def split_rows(n: int, val_pct: float = 0.2, test_pct: float = 0.0, seed: int = 42) -> Split:
    """The random split of n rows.

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
    _check_parts(n, train, val, test, test_pct > 0, f"val_pct={val_pct}, test_pct={test_pct}")
    return Split(train=train, val=val, test=test, about={"kind": "random", "seed": seed})


def _ceil_share(share: float, n):
    """⌈share · n⌉ exactly (n an int or an int array), reading `share` as the decimal it was written as: 0.1 is 1/10,
    not 0.1000000000000000055."""
    exact = Fraction(str(share))
    return -(-(n * exact.numerator) // exact.denominator)


def _latest(timestamps: np.ndarray, share: float) -> tuple[np.ndarray, int | None]:
    """The rows at or after the cut that holds out the latest `share` of `timestamps`, and that cut.

    The cut is the timestamp of the row at position n − ⌈share · n⌉ in time order (0-based); every row whose
    timestamp equals it is held out too, so a tie at the cut is never split."""
    n = len(timestamps)
    if share <= 0 or n == 0:
        return np.zeros(n, dtype=bool), None
    position = n - int(_ceil_share(share, n))
    cut = int(np.sort(timestamps, kind="stable")[max(position, 0)])
    return timestamps >= cut, cut


def temporal(timestamps: np.ndarray, val_pct: float, test_pct: float) -> Split:
    """Test: every rating at or after the cut of the latest test_pct; validation: the same cut over the rest at
    val_pct; train: the earlier rows."""
    n = len(timestamps)
    rows = np.arange(n)
    held, test_cut = _latest(timestamps, test_pct)
    rest = rows[~held]
    late, val_cut = _latest(timestamps[rest], val_pct)
    test, val, train = rows[held], rest[late], rest[~late]
    _check_parts(n, train, val, test, test_pct > 0, f"split temporal, val_pct={val_pct}, test_pct={test_pct}")
    about = {"kind": "temporal", "test_from": test_cut, "val_from": val_cut}
    return Split(train=train, val=val, test=test, about=about)


def holdout_per_user(counts: np.ndarray, holdout: float) -> np.ndarray:
    """How many of each user's ratings are held out for test (and as many for validation): `holdout` itself when it
    is a count (an int >= 1), else ⌈holdout · ratings⌉ for a fraction in (0, 1)."""
    if isinstance(holdout, int):
        return np.full(len(counts), holdout, dtype=np.int64)
    return np.maximum(_ceil_share(holdout, counts.astype(np.int64)), 1)


def user_last(users: np.ndarray, timestamps: np.ndarray, holdout: float) -> Split:
    """Per user, in time order: the last h ratings test, the h before them validation, the rest train. A user with
    fewer than 2h + 1 ratings (so no train row would be left) stays whole in train."""
    check_holdout(holdout)
    n = len(users)
    order = np.lexsort((timestamps, users))  # by user, then time; stable, so ties keep the file's order
    ordered_users = users[order]
    counts = np.bincount(users)
    h = holdout_per_user(counts, holdout)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[ordered_users] - 1 - (np.arange(n) - starts[ordered_users])  # 0: the user's latest rating
    whole = counts < 2 * h + 1
    h_row, whole_row = h[ordered_users], whole[ordered_users]
    part = np.where(whole_row, 0, np.where(from_end < h_row, 2, np.where(from_end < 2 * h_row, 1, 0)))
    train, val, test = (np.sort(order[part == p]) for p in (0, 1, 2))
    _check_parts(n, train, val, test, True, f"split user-last, holdout={holdout}")
    rated = counts > 0
    about = {"kind": "user-last", "holdout": holdout, "users_whole": int((whole & rated).sum())}
    about["users_split"] = int((~whole & rated).sum())
    return Split(train=train, val=val, test=test, about=about)


def check_holdout(holdout: object) -> None:
    ok_count = isinstance(holdout, int) and not isinstance(holdout, bool) and holdout >= 1
    ok_share = isinstance(holdout, float) and 0 < holdout < 1
    if not (ok_count or ok_share):
        raise UserError(f"holdout must be a count of ratings >= 1 or a fraction in (0, 1), got {holdout!r}")


def _check_parts(n: int, train, val, test, want_test: bool, settings: str) -> None:
    if len(train) == 0 or len(val) == 0 or (want_test and len(test) == 0):
        empty = [name for name, part in (("train", train), ("validation", val), ("test", test)) if len(part) == 0]
        raise UserError(f"{n} ratings leave no {' and no '.join(empty)} rows at {settings}")
