"""Report sections as Markdown: text, tables and figures, in order."""

from __future__ import annotations

import math
from pathlib import Path

import markdown

CSS = """
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,td:nth-child(2),td:nth-child(3){text-align:left}img{max-width:100%}code{font-size:.85em}
h2{border-bottom:1px solid #ddd;margin-top:2em}"""


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


def write_page(folder: Path, title: str, description: str, sections: list[Section | None]) -> None:
    """report.md and index.html in `folder`: the title, the description, then the sections, numbered."""
    body = number([s for s in sections if s is not None])
    text = f"# {title}\n\n{description}\n\n" + "\n\n".join(s.markdown() for s in body) + "\n"
    (folder / "report.md").write_text(text, encoding="utf-8")
    html = markdown.markdown(text, extensions=["tables"])
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
    (folder / "index.html").write_text(f"{page}<body>{html}</body></html>\n", encoding="utf-8")
