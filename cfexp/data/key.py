"""What decides a study's rows and values: the dataset's content digest (after the filters), the split and its
settings (and, for a time-aware split, the timestamps' digest), the filters, and the relevance threshold. A study
records it when it is created and is never opened on anything else.

A sweep on the data its experiment file names keeps the experiment's name. One whose data come from the command
line (`--ratings`, `--set data.*`) is its own experiment, `<name>-<key>`, so that its studies, runs, registered
models and champion are apart from the file's. A study, parent run or registered model that records other data
than the command's is refused in one line that says what differs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from cfexp import keys
from cfexp.errors import UserError

ATTR = keys.DATA  # Optuna study user attr (the whole DataKey) and MLflow tag (its short key)


# Fields recorded only where they differ from these, so that the random split of unfiltered ratings keeps the key
# it always had (and the studies made before there were other splits stay theirs).
UNLESS = {"split": "random", "holdout": None, "filters": None, "timestamps": None, "implicit": False}


@dataclass(frozen=True)
class DataKey:
    digest: str  # Ratings.digest: the (userId, movieId, rating) content in file order, after the filters
    val_pct: float
    test_pct: float
    seed: int
    relevance: float  # which validation or test ratings count as relevant in the ranking metrics
    split: str = "random"
    holdout: float | None = None  # user-last's
    filters: dict | None = None  # those that take something
    timestamps: str | None = None  # Ratings.timestamps_digest, for a split by time
    implicit: bool = False

    @property
    def key(self) -> str:
        """Eight hex digits that name these data."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in UNLESS or v != UNLESS[k]}

    def params(self) -> dict[str, str]:
        """The protocol as MLflow params of a study's parent run, so that the UI compares runs by it."""
        found = {"data.split": self.split, "data.relevance": str(self.relevance)}
        if self.split != "user-last":
            found.update({"data.test_pct": str(self.test_pct), "data.val_pct": str(self.val_pct)})
        if self.holdout is not None:
            found["data.holdout"] = str(self.holdout)
        found.update({f"data.{k}": str(v) for k, v in (self.filters or {}).items()})
        if self.implicit:
            found["data.implicit"] = "true"
        return found

    def differences(self, recorded: dict) -> list[str]:
        """What differs from a recorded DataKey, as 'field recorded → now'."""
        mine, theirs = {**UNLESS, **self.as_dict()}, {**UNLESS, **recorded}
        return [f"{k} {theirs.get(k)} → {v}" for k, v in mine.items() if theirs.get(k) != v]


def relevance(ratings, experiment) -> float:
    """The relevance threshold of the ranking metrics: [eval] relevance, or 0 (every held-out interaction is
    relevant) on implicit feedback, where there are no ratings to hold it against."""
    return 0.0 if ratings.implicit else experiment.eval.relevance


def data_key(dataset, experiment) -> DataKey:
    """The key of an experiment's Dataset (cfexp.data.dataset)."""
    data, ratings = experiment.data, dataset.ratings
    timed = data.split in ("temporal", "user-last")
    return DataKey(
        ratings.digest,
        float(data.val_pct),
        float(data.test_pct),
        int(data.seed),
        relevance(ratings, experiment),
        split=data.split,
        holdout=data.holdout if data.split == "user-last" else None,
        filters=data.filters or None,
        timestamps=ratings.timestamps_digest if timed else None,
        implicit=ratings.implicit,
    )


def named_for_data(experiment, key: DataKey):
    """The experiment under the name its studies take on these data (see the module's docstring)."""
    if not experiment.data_from_cli:
        return experiment
    return replace(experiment, name=f"{experiment.name}-{key.key}", data_from_cli=False)


def check_study(name: str, recorded: dict | None, key: DataKey, has_trials: bool) -> bool:
    """Whether the study must record `key` (it is new); refuses a study of other data in one line."""
    if recorded is None and not has_trials:
        return True
    if recorded is None:
        raise UserError(
            f"study {name} has trials but records no data (an older cfexp made it), so they may be of other rows; "
            "delete it, or give the experiment another name with --set name=..."
        )
    if recorded != key.as_dict():
        raise UserError(
            f"study {name} was tuned on other data ({'; '.join(key.differences(recorded))}); "
            "give this experiment another name with --set name=..., or delete the study"
        )
    return False


def check_tagged(what: str, tagged: str | None, key: DataKey) -> None:
    """A run or model version that records its data's short key: refused when it is not these data's."""
    if tagged != key.key:
        recorded = f"data {tagged}" if tagged else "no record of its data"
        raise UserError(
            f"{what} has {recorded}, and these data are {key.key}: it was made on other rows; "
            "run cfexp sweep on these data first, or give the experiment another name with --set name=..."
        )
