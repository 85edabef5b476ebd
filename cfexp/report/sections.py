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


def number(sections: list[Section]) -> list[Section]:
    """Number the sections in order ("3. ..."), and each subsection under its section ("5.2 ...")."""
    major = minor = 0
    for section in sections:
        if section.level == 2:
            major, minor = major + 1, 0
            section.title = f"{major}. {section.title}"
        else:
            minor += 1
            section.title = f"{major}.{minor} {section.title}"
    return sections
