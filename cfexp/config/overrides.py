"""`--set key=value` overrides, applied to an experiment's raw TOML data before it is validated."""

from __future__ import annotations

import copy
import difflib
import tomllib
from typing import Any

from cfexp.errors import UserError


def apply_override(raw: dict, override: str, run_keys: set[str], top_level: set[str]) -> None:
    """`a.b.c=value`: value is read as TOML (numbers, lists, booleans, quoted strings), else kept as text.

    `runs.NAME.key` (or `runs.INDEX.key`, or `sweep.variants.NAME.key`) targets one entry; a bare run key
    such as `batch_size=256` targets every run and every swept variant.
    """
    key, sep, text = override.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"bad --set {override!r}: use key=value")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    parts = key.split(".")
    if len(parts) == 1 and parts[0] not in run_keys | top_level:
        close = difflib.get_close_matches(key, sorted(run_keys | top_level), n=1)
        raise UserError(f"--set: unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    if len(parts) == 1 and parts[0] in run_keys:
        sweep = raw.get("sweep", {})
        entries = [*raw.get("runs", []), *(sweep.get("variants", []) if isinstance(sweep, dict) else [])]
        for entry in entries:
            if isinstance(entry, dict):
                entry[parts[0]] = copy.deepcopy(value)
        raw.setdefault("train", {})[parts[0]] = value
        return
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _find_in_list(node, part, ".".join(parts[: i + 1]))
        elif part in ("runs", "variants") and part not in node:
            raise UserError(f"--set: there are no {'.'.join(parts[: i + 1])} entries to set")
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise UserError(f"bad --set {override!r}: {'.'.join(parts[: i + 1])} is not a table")
    if isinstance(node, list):
        raise UserError(f"bad --set {override!r}: name a single entry")
    node[parts[-1]] = value


def _find_in_list(items: list, part: str, where: str) -> dict:
    if part.isdigit() and int(part) < len(items):
        return items[int(part)]
    for item in items:
        if isinstance(item, dict) and item.get("name", item.get("variant")) == part:
            return item
    raise UserError(f"--set: no entry {where!r}")
