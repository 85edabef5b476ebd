"""The figures README.md and docs/ quote, copied from BENCHMARKS.md between markers, so that they cannot drift.

A block `<!-- bench: HEADING -->` … `<!-- /bench -->` holds the first table under the BENCHMARKS.md heading that
starts with HEADING; `<!-- bench: HEADING | PREFIX -->` holds the first line there that starts with PREFIX.
`make bench` rewrites every block after writing BENCHMARKS.md (`python -m cfexp.bench.docs` does it alone), and a
test fails when a block differs from what BENCHMARKS.md says.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCK = re.compile(r"(<!-- bench: (?P<selector>[^>]*?) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)
PAGES = ("README.md", "docs/*.md")


class MissingFigure(LookupError):
    """A block names a part of BENCHMARKS.md that is not there."""


def excerpt(benchmarks: str, selector: str) -> str:
    """What a block with `selector` holds: a table, or one line, under the heading it names."""
    heading, _, prefix = (part.strip() for part in selector.partition("|"))
    lines = benchmarks.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip("#").strip().startswith(heading) and line[:1] == "#"]
    if not starts:
        raise MissingFigure(f"no heading {heading!r} in BENCHMARKS.md")
    section = lines[starts[0] + 1 :]
    end = next((i for i, line in enumerate(section) if line.startswith("#")), len(section))
    section = section[:end]
    if prefix:
        found = next((line for line in section if line.startswith(prefix)), None)
        if found is None:
            raise MissingFigure(f"no line starting {prefix!r} under {heading!r} in BENCHMARKS.md")
        return found + "\n"
    first = next((i for i, line in enumerate(section) if line.startswith("|")), None)
    if first is None:
        raise MissingFigure(f"no table under {heading!r} in BENCHMARKS.md")
    table = [line for line in section[first:]]
    stop = next((i for i, line in enumerate(table) if not line.startswith("|")), len(table))
    return "\n".join(table[:stop]) + "\n"


def blocks(text: str) -> list[tuple[str, str]]:
    """Each block's (selector, body)."""
    return [(m.group("selector"), m.group("body")) for m in BLOCK.finditer(text)]


def synced(text: str, benchmarks: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + excerpt(benchmarks, m.group("selector")) + m.group(4), text)


def pages(root: Path = Path(".")) -> list[Path]:
    return sorted(p for pattern in PAGES for p in root.glob(pattern))


def sync(root: Path = Path(".")) -> list[Path]:
    """Rewrite every block of README.md and docs/*.md from BENCHMARKS.md; returns the pages that changed."""
    benchmarks = (root / "BENCHMARKS.md").read_text()
    changed = []
    for page in pages(root):
        text = page.read_text()
        new = synced(text, benchmarks)
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


def main() -> int:
    for page in sync():
        print(f"updated {page} from BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
