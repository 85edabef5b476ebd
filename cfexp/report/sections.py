"""Report sections as Markdown: text, tables and figures, in order."""

from __future__ import annotations

import math


class Section:
    def __init__(self, title: str, level: int = 2):
        self.title, self.level = title, level
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, path: str | None, alt: str) -> None:
        if path:
            self.parts.append(f"![{alt}]({path})")

    def markdown(self) -> str:
        return f"{'#' * self.level} {self.title}\n\n" + "\n\n".join(self.parts)


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def md_table(rows: list[list]) -> str:
    """A Markdown table; the first row is the header."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines)
