"""The `[data]` table of an experiment: which ratings (and how to read them), the filters, and how they are split."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfexp.config.checks import NUMBER, check_keys, check_types, table
from cfexp.errors import UserError

BUILTIN_DATASET = "ml-latest-small"
SPLITS = ("random", "temporal", "user-last")
COLUMN_ROLES = ("user", "item", "rating", "timestamp")
# A bare name like "ml-1m" names a fetched release (cfexp.data.releases), not a path beside the experiment file.
RELEASE_NAME = re.compile(r"ml-[a-z0-9-]+")

DATA_DEFAULTS: dict[str, Any] = {
    "ratings": BUILTIN_DATASET,
    "val_pct": 0.2,
    "test_pct": 0.0,
    "seed": 42,
    "split": "random",
    "holdout": 1,
    "min_user_ratings": 0,
    "min_movie_ratings": 0,
    "k_core": 0,
    "columns": {},
    "separator": ",",
    "header": True,
}
DATA_TYPES = {
    "ratings": (str,),
    "val_pct": NUMBER,
    "test_pct": NUMBER,
    "seed": (int,),
    "split": (str,),
    "holdout": NUMBER,
    "min_user_ratings": (int,),
    "min_movie_ratings": (int,),
    "k_core": (int,),
    "columns": (dict,),
    "separator": (str,),
    "header": (bool,),
}


@dataclass(frozen=True)
class DataConfig:
    ratings: str = BUILTIN_DATASET
    val_pct: float = 0.2
    test_pct: float = 0.0
    seed: int = 42
    split: str = "random"  # random | temporal | user-last (cfexp.data.splits)
    holdout: int | float = 1  # user-last: a count of each user's last ratings, or a fraction of them
    min_user_ratings: int = 0
    min_movie_ratings: int = 0
    k_core: int = 0
    columns: dict = field(default_factory=dict)  # {user, item, rating, timestamp} of any interaction file
    separator: str = ","
    header: bool = True

    @property
    def filters(self) -> dict[str, int]:
        """The filters that take something (cfexp.data.filters), by key."""
        found = {"min_user_ratings": self.min_user_ratings, "min_movie_ratings": self.min_movie_ratings}
        found["k_core"] = self.k_core
        return {k: v for k, v in found.items() if v > 1}


def parse_data(raw: dict, base: Path, source: str) -> DataConfig:
    data_raw = table(raw, "data", source)
    where = f"{source} [data]"
    check_keys(data_raw, set(DATA_DEFAULTS), where)
    data = {**DATA_DEFAULTS, **data_raw}
    check_types(data, DATA_TYPES, where)
    if (
        data["ratings"] != BUILTIN_DATASET
        and not _is_release(data["ratings"])
        and not Path(data["ratings"]).is_absolute()
    ):
        data["ratings"] = str(base / data["ratings"])
    config = DataConfig(**data)
    if not 0 < config.val_pct < 1:
        raise UserError(f"{source}: val_pct must be in (0, 1), got {config.val_pct}")
    if not 0 <= config.test_pct < 1:
        raise UserError(f"{source}: test_pct must be in [0, 1), got {config.test_pct}")
    if config.split not in SPLITS:
        raise UserError(f"{where}: split must be one of {', '.join(SPLITS)}, got {config.split!r}")
    holdout = config.holdout
    if not ((isinstance(holdout, int) and holdout >= 1) or (isinstance(holdout, float) and 0 < holdout < 1)):
        raise UserError(f"{where}: holdout must be a count of ratings >= 1 or a fraction in (0, 1), got {holdout!r}")
    for key in ("min_user_ratings", "min_movie_ratings", "k_core"):
        if getattr(config, key) < 0:
            raise UserError(f"{where}: {key} must be >= 0 (0: no filter), got {getattr(config, key)}")
    if not config.separator or "\n" in config.separator or '"' in config.separator:
        raise UserError(f"{where}: separator must be one or more characters other than a newline or a quote")
    if config.columns:
        check_columns(config.columns, config.header, where)
    return config


def _is_release(ratings: str) -> bool:
    return RELEASE_NAME.fullmatch(ratings) is not None


def check_columns(columns: dict, header: bool, where: str) -> None:
    """A user and an item column at least, each named by text (a file with a header) or by position (without)."""
    unknown = sorted(set(columns) - set(COLUMN_ROLES))
    if unknown:
        raise UserError(f"{where}: columns has unknown role(s) {', '.join(unknown)}; use {', '.join(COLUMN_ROLES)}")
    for role in ("user", "item"):
        if role not in columns:
            raise UserError(f"{where}: columns needs a {role} column (e.g. columns = {{ user = ..., item = ... }})")
    kind = str if header else int
    for role, name in columns.items():
        if not isinstance(name, kind) or isinstance(name, bool) or (not header and name < 0):
            what = "a column name (the file has a header)" if header else "a position from 0 (header = false)"
            raise UserError(f"{where}: columns.{role} must be {what}, got {name!r}")
    if len(set(columns.values())) != len(columns):
        raise UserError(f"{where}: columns names one column for two roles: {columns}")
