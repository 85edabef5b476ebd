"""MovieLens releases as GroupLens ships them, read from a folder, a zip or a single file, the format found from the
content:

- ml-100k: `u.data`, tab-separated user, item, rating, timestamp with no header; titles in `u.item` ('|', latin-1)
- ml-1m and ml-10m: `ratings.dat`, '::'-separated; titles in `movies.dat` (latin-1 in ml-1m, UTF-8 in ml-10m)
- ml-20m, ml-25m, ml-32m and ml-latest(-small): `ratings.csv` with a header; titles in `movies.csv`

Ratings come back as a frame of userId, movieId, rating and timestamp (seconds), titles as a frame of movieId and
title. Everything is parsed by pyarrow into typed columns; a file that does not parse that way (a value that is
not a number) is read again by pandas, so that the error can name the row.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from cfexp.errors import UserError
from cfexp.system.redact import first_line

COLUMNS = ("userId", "movieId", "rating")
TIMESTAMP = "timestamp"  # every release has one; a ratings.csv without it is read without
RATINGS_FILES = ("ratings.csv", "ratings.dat", "u.data")  # in this order of preference within a folder or zip
TITLES_FILES = {"ratings.csv": "movies.csv", "ratings.dat": "movies.dat", "u.data": "u.item"}
UNDERSTOOD = (
    "ratings.csv with a userId,movieId,rating header (ml-20m, ml-25m, ml-32m, ml-latest), '::'-separated "
    "ratings.dat (ml-1m, ml-10m) or tab-separated u.data (ml-100k)"
)
READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError)


class _Member:
    """One file of a release: on disk, or inside a zip (kept open while it is read)."""

    def __init__(self, open_binary, label: str):
        self.open_binary, self.label = open_binary, label

    def head(self) -> bytes:
        with self.open_binary() as fh:
            return fh.read(1 << 16)

    def read(self) -> bytes:
        with self.open_binary() as fh:
            return fh.read()


def read(path: Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The ratings and titles of a MovieLens folder, zip or ratings file."""
    if not path.exists():
        raise UserError(f"ratings not found: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = {
                Path(n).name: _Member(lambda n=n: zf.open(n), f"{path}:{Path(n).name}")
                for n in zf.namelist()
                if not n.endswith("/")
            }
            return _read_release(members, str(path))
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file() and len(p.relative_to(path).parts) <= 2]
        return _read_release({p.name: _Member(lambda p=p: p.open("rb"), str(p)) for p in files}, str(path))
    ratings = _Member(lambda: path.open("rb"), str(path))
    kind = sniff(ratings.head(), str(path))
    titles_path = path.with_name(TITLES_FILES[kind])
    titles = None
    if titles_path.exists():
        titles = _titles(titles_path.read_bytes(), TITLES_FILES[kind])
    return _ratings(ratings, kind), titles


def _read_release(members: dict[str, _Member], label: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    kind = next((name for name in RATINGS_FILES if name in members), None)
    if kind is None:
        raise UserError(f"no MovieLens ratings in {label}: cfexp reads {UNDERSTOOD}")
    ratings = members[kind]
    if sniff(ratings.head(), ratings.label) != kind:
        raise UserError(f"{ratings.label} is not laid out as MovieLens' {kind}: cfexp reads {UNDERSTOOD}")
    titles_name = TITLES_FILES[kind]
    titles = _titles(members[titles_name].read(), titles_name) if titles_name in members else None
    return _ratings(ratings, kind), titles


def sniff(head: bytes, label: str) -> str:
    """Which ratings layout a file's first line has."""
    first = _header_line(head)
    if not first:
        raise UserError(f"cannot read {label}: it is empty")
    if "::" in first:
        return "ratings.dat"
    if "userId" in first and "," in first:
        return "ratings.csv"
    fields = first.split("\t")
    if len(fields) == 4 and all(f.strip().lstrip("-").replace(".", "", 1).isdigit() for f in fields):
        return "u.data"
    raise UserError(f"{label} is not a MovieLens ratings file: cfexp reads {UNDERSTOOD}")


def _ratings(member: _Member, kind: str) -> pd.DataFrame:
    if kind == "ratings.csv":
        return _typed(member, delimiter=",", header=True)
    if kind == "ratings.dat":  # a two-character separator: one byte instead, for pyarrow
        replaced = member.read().replace(b"::", b"\t")
        return _typed(_Member(lambda: io.BytesIO(replaced), member.label), delimiter="\t", header=False)
    return _typed(member, delimiter="\t", header=False)


def _typed(member: _Member, delimiter: str, header: bool) -> pd.DataFrame:
    """userId, movieId, rating and timestamp parsed straight into typed columns (streamed from the file: ml-25m's 25
    million rows in seconds and about 1.2 GB)."""
    names = None if header else [*COLUMNS, TIMESTAMP]
    types = {"userId": pa.int64(), "movieId": pa.int64(), "rating": pa.float64(), TIMESTAMP: pa.int64()}
    fields = _header_line(member.head()).split(delimiter) if header else names
    wanted = [*COLUMNS, *([TIMESTAMP] if TIMESTAMP in fields else [])]
    try:
        if not set(COLUMNS) <= set(fields):
            raise pa.ArrowInvalid("a column is missing")  # let pandas read it, and the checks name the column
        with member.open_binary() as fh:
            table = pa_csv.read_csv(
                fh,
                read_options=pa_csv.ReadOptions(column_names=names),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=pa_csv.ConvertOptions(include_columns=wanted, column_types=types),
            )
        return pd.DataFrame({name: table.column(name).to_numpy() for name in wanted}, copy=False)
    except pa.ArrowInvalid:
        pass
    try:
        with member.open_binary() as fh:
            return pd.read_csv(fh, sep=delimiter, header=0 if header else None, names=names)
    except READ_ERRORS as exc:
        raise UserError(f"cannot read {member.label}: {first_line(exc)}") from None


def _titles(content: bytes, name: str) -> pd.DataFrame | None:
    """movieId and title; None when the file does not give them (titles are a nicety, never an error)."""
    text = _decode(content)
    try:
        if name == "movies.csv":
            frame = pd.read_csv(io.StringIO(text), usecols=["movieId", "title"])
        elif name == "movies.dat":
            rows = (line.split("::")[:2] for line in text.splitlines() if "::" in line)
            frame = pd.DataFrame(rows, columns=["movieId", "title"])
        else:  # u.item: id|title|release date|...
            rows = (line.split("|")[:2] for line in text.splitlines() if "|" in line)
            frame = pd.DataFrame(rows, columns=["movieId", "title"])
        frame["movieId"] = pd.to_numeric(frame["movieId"], errors="coerce")
        return frame.dropna(subset=["movieId"]).astype({"movieId": "int64"})
    except (*READ_ERRORS, KeyError):
        return None


def _decode(content: bytes) -> str:
    """UTF-8, or latin-1 where GroupLens wrote that (ml-100k's u.item, ml-1m's movies.dat)."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("latin-1")


def _header_line(content: bytes) -> str:
    end = content.find(b"\n")
    return content[: end if end >= 0 else len(content)].decode("utf-8", "replace").strip()
