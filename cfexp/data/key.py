"""What decides a study's rows and values: the dataset's content digest, the split settings and the relevance
threshold. A study records it when it is created and is never opened on anything else.

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


@dataclass(frozen=True)
class DataKey:
    digest: str  # Ratings.digest: the (userId, movieId, rating) content in file order
    val_pct: float
    test_pct: float
    seed: int
    relevance: float  # which validation or test ratings count as relevant in the ranking metrics

    @property
    def key(self) -> str:
        """Eight hex digits that name these data."""
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def as_dict(self) -> dict:
        return asdict(self)

    def differences(self, recorded: dict) -> list[str]:
        """What differs from a recorded DataKey, as 'field recorded → now'."""
        mine = self.as_dict()
        return [f"{k} {recorded.get(k)} → {v}" for k, v in mine.items() if recorded.get(k) != v]


def data_key(ratings, experiment) -> DataKey:
    data = experiment.data
    return DataKey(ratings.digest, float(data.val_pct), float(data.test_pct), int(data.seed), experiment.eval.relevance)


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
