"""Checks of a TOML table's keys and value types, each failure one line that says where and what is allowed."""

from __future__ import annotations

import difflib

from cfexp.errors import UserError

NUMBER = (int, float)
TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "a table", bool: "true or false"}


def table(raw: dict, key: str, source: str) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise UserError(f"{source}: [{key}] must be a table")
    return value


def check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(sorted(allowed))}"
            raise UserError(f"{where}: unknown key {key!r}{hint}")


def check_types(table: dict, types: dict[str, tuple[type, ...]], where: str) -> None:
    for key, allowed in types.items():
        value = table.get(key)
        if value is None:
            continue
        ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
        if not ok:
            names = "a number" if allowed == NUMBER else " or ".join(TYPE_NAMES[t] for t in allowed)
            raise UserError(f"{where}: {key} must be {names}, got {value!r}")
