"""The settings an experiment is run under (`[across]`, or `--across` on the command line): each setting is the
experiment it would be alone with a few `[data]` keys set, as `--set data.KEY=VALUE` sets them.

```toml
[across]
"data.split" = ["random", "temporal", "user-last"]   # the product of the lists: 3 settings
"data.ratings" = ["ml-latest-small"]
```

or a listed set, `[across] settings = [{ "data.split" = "random" }, { "data.split" = "temporal", "data.k_core" = 5 }]`.
Only `data.*` keys vary: a setting is other data or another protocol, with studies, runs and a champion of its own.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from dataclasses import dataclass
from typing import Any

from cfexp.config.data_table import DATA_DEFAULTS
from cfexp.errors import UserError


@dataclass(frozen=True)
class Setting:
    values: tuple[tuple[str, Any], ...]  # (("data.split", "temporal"), ...), in the order given

    @property
    def label(self) -> str:
        """A short name: `split=temporal, ratings=ml-1m`."""
        return ", ".join(f"{key.removeprefix('data.')}={_shown(value)}" for key, value in self.values)

    def overrides(self) -> list[str]:
        """The setting as `--set` overrides."""
        return [f"{key}={toml_value(value)}" for key, value in self.values]


def parse_across(raw: Any, where: str) -> tuple[Setting, ...]:
    """The settings of an `[across]` table: the product of its lists, or its listed `settings`."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{where}: [across] must be a table of data keys and their lists of values")
    if "settings" in raw:
        if len(raw) > 1:
            raise UserError(f"{where} [across]: give either settings = [...] or lists of values, not both")
        listed = raw["settings"]
        if not isinstance(listed, list) or not listed or not all(isinstance(s, dict) and s for s in listed):
            raise UserError(f'{where} [across]: settings must be a list of tables, e.g. [{{ "data.split" = ... }}]')
        found = [Setting(tuple((_key(k, where), v) for k, v in s.items())) for s in listed]
    else:
        for key, values in raw.items():
            _key(key, where)
            if not isinstance(values, list) or not values:
                raise UserError(f"{where} [across]: {key} must be a non-empty list of values, got {values!r}")
        keys = list(raw)
        found = [Setting(tuple(zip(keys, combo, strict=True))) for combo in itertools.product(*raw.values())]
    labels = [s.label for s in found]
    if len(set(labels)) != len(labels):
        raise UserError(f"{where} [across]: a setting is given twice: {labels}")
    return tuple(found)


def from_cli(items: list[str]) -> tuple[Setting, ...]:
    """`--across data.split=random,temporal` (repeatable): the product of every option's values."""
    table = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not text:
            raise UserError(f"bad --across {item!r}: use data.KEY=VALUE,VALUE,...")
        table[key.strip()] = [_value(part) for part in text.split(",")]
    return parse_across(table, "--across")


def _key(key: str, where: str) -> str:
    section, _, name = key.partition(".")
    if section != "data" or name not in DATA_DEFAULTS:
        known = ", ".join(f"data.{k}" for k in DATA_DEFAULTS)
        raise UserError(f"{where} [across]: {key!r} cannot vary across settings; a setting sets one of {known}")
    return key


def _value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def toml_value(value: Any) -> str:
    """A value as TOML writes it (what `--set` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else toml_value(value)
