"""README.md and docs/ quote measured figures only from BENCHMARKS.md, and carry no development history."""

import re
from pathlib import Path

import pytest

from cfexp.bench import docs

ROOT = Path(__file__).parents[2]
PAGES = docs.pages(ROOT)
# A measured-looking figure: a decimal with a unit of time, speed-up, share or memory, or a loss to 3+ decimals.
FIGURE = re.compile(r"(?<![\w.])(\d+\.\d+\s?(s|ms|×|%|MB|GB|min|minutes)(?!\w)|0\.\d{3,}(?!\d))")
HISTORY = ("the issue", "issue #", "was quoted", "when the work was planned", "earlier `make bench`", "we tried")


def prose(text: str) -> str:
    """The page less its bench blocks, its fenced code and its HTML comments."""
    text = docs.BLOCK.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def test_the_readme_is_short_and_the_docs_have_their_pages():
    assert len((ROOT / "README.md").read_bytes()) <= 12_000
    assert len(list((ROOT / "docs").glob("*.md"))) >= 8


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_quoted_figure_is_what_benchmarks_md_says(page):
    benchmarks = (ROOT / "BENCHMARKS.md").read_text()
    for selector, body in docs.blocks(page.read_text()):
        assert body == docs.excerpt(benchmarks, selector), f"{page.name}: the block {selector!r} has drifted"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_figure_is_typed_by_hand_and_no_history_is_told(page):
    text = prose(page.read_text())
    typed = [m.group(0) for m in FIGURE.finditer(text)]
    assert not typed, f"{page.name}: figures outside a bench block: {typed}"
    told = [phrase for phrase in HISTORY if phrase in text.lower()]
    assert not told, f"{page.name}: development history: {told}"


def test_a_drifted_block_is_caught_and_sync_repairs_it(tmp_path):
    benchmarks = "# B\n\n### c. sweep\n\nText.\n\n| wall |\n|---|\n| 143.7 s |\n\nTarget: met.\n"
    (tmp_path / "BENCHMARKS.md").write_text(benchmarks)
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "p.md"
    page.write_text("See:\n<!-- bench: c. -->\n| wall |\n|---|\n| 150.0 s |\n<!-- /bench -->\n")
    [(selector, body)] = docs.blocks(page.read_text())
    assert body != docs.excerpt((tmp_path / "BENCHMARKS.md").read_text(), selector)
    assert docs.sync(tmp_path) == [page]
    assert "| 143.7 s |" in page.read_text() and "150.0" not in page.read_text()


def test_benchmarks_md_tells_no_history():
    text = (ROOT / "BENCHMARKS.md").read_text().lower()
    assert not [phrase for phrase in HISTORY if phrase in text]
