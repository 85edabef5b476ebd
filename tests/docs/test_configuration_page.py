"""docs/configuration.md lists every key of an experiment file with cfexp's own default."""

import re
from pathlib import Path

import pytest

from cfexp.config import data_table, eval_table, experiment, sweep_table

PAGE = Path(__file__).parents[2] / "docs" / "configuration.md"
TABLES = {
    "`[data]`": data_table.DATA_DEFAULTS,
    "`[train]`": experiment.RUN_DEFAULTS,
    "`[sweep]`": sweep_table.SWEEP_DEFAULTS,
    "`[eval]`": eval_table.EVAL_DEFAULTS,
}


def rows_under(heading: str) -> dict[str, str]:
    text = PAGE.read_text()
    section = text[text.index(f"### {heading}") :].split("\n### ")[0]
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section, re.M))


def shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dict):
        return "`{}`"
    return f"`{value}`".replace("'", '"')


@pytest.mark.parametrize("heading", TABLES)
def test_every_key_is_listed_with_its_default(heading):
    rows = rows_under(heading)
    defaults = TABLES[heading]
    assert set(rows) == set(defaults), f"{heading}: the page and cfexp's keys differ"
    for key, value in defaults.items():
        assert rows[key].strip() == shown(value), f"{heading} {key}: the page says {rows[key]!r}, cfexp {value!r}"


def test_every_top_level_key_is_listed():
    assert set(rows_under("Top level")) == experiment.TOP_LEVEL - {"data", "train", "runs", "sweep", "eval"}
