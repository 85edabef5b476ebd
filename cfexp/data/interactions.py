"""Any delimited interaction file, its columns named in the experiment (`[data] columns`): a user and an item
column, and optionally a rating and a timestamp column. Without a rating column every row is a positive (implicit
feedback).

`columns` maps cfexp's names to the file's: `{ user = "user_id", item = "asin", rating = "stars", timestamp =
"time" }`; a file without a header names them by position from 0 (`{ user = 0, item = 1 }`). Ids are kept as the
file writes them (integers, or text). A timestamp is a number of seconds (decimals are cut to the second), or a date
and time that pandas reads (taken as UTC). Parsing is pyarrow's, straight into typed columns; a file it cannot
parse is read again by pandas, so that the error can name the row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from cfexp.errors import UserError
from cfexp.system.redact import first_line

ROLES = ("user", "item", "rating", "timestamp")  # checked in cfexp.config.data_table
NAMES = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}  # cfexp's own columns
READ_ERRORS = (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError)


def read(path: Path, columns: dict, separator: str, header: bool) -> pd.DataFrame:
    """userId, movieId and, where named, rating and timestamp, from the file's own columns."""
    if not path.is_file():
        raise UserError(f"ratings not found: {path}" if not path.exists() else f"{path} is not a file")
    wanted = {role: columns[role] for role in ROLES if role in columns}
    table = _arrow(path, wanted, separator, header)
    frame = _pandas(path, wanted, separator, header) if table is None else table
    out = pd.DataFrame({NAMES[role]: frame[_label(name)] for role, name in wanted.items()}, copy=False)
    if "timestamp" in out:
        out["timestamp"] = _seconds(out["timestamp"], path)
    return out


def _label(name: str | int) -> str:
    return name if isinstance(name, str) else f"f{name}"


def _arrow(path: Path, wanted: dict, separator: str, header: bool) -> pd.DataFrame | None:
    names = [_label(n) for n in wanted.values()]
    try:
        source, delimiter = _source(path, separator)
        table = pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(autogenerate_column_names=not header),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(include_columns=names),
        )
    except (KeyError, pa.ArrowInvalid):  # a column that is not there, or a bad value: pandas says which
        return None
    return pd.DataFrame({name: table.column(name).to_numpy(zero_copy_only=False) for name in names}, copy=False)


def _pandas(path: Path, wanted: dict, separator: str, header: bool) -> pd.DataFrame:
    names = [_label(n) for n in wanted.values()]
    try:
        engine = "python" if len(separator) > 1 else "c"  # the C parser takes one character
        frame = pd.read_csv(path, sep=separator, header=0 if header else None, engine=engine, dtype=str)
    except READ_ERRORS as exc:
        raise UserError(f"cannot read {path}: {first_line(exc)}") from None
    if not header:
        frame.columns = [f"f{i}" for i in range(frame.shape[1])]
    if not set(names) <= set(frame.columns):
        return _missing(path, header, names, list(frame.columns))
    return frame[names]


def _missing(path: Path, header: bool, names: list[str], found: list):
    absent = [n for n in names if n not in found]
    shown = ", ".join(map(str, found)) if header else f"{len(found)} columns"
    what = "column(s)" if header else "position(s)"
    absent_shown = ", ".join(a if header else a[1:] for a in absent)
    raise UserError(f"{path} has no {what} {absent_shown} (it has {shown}); see [data] columns")


def _source(path: Path, separator: str):
    """What pyarrow reads, and with which delimiter: the path itself (pyarrow decompresses .gz or .bz2 by name), or,
    for a multi-character separator ('::'), the content with it turned into a tab."""
    if len(separator) == 1:
        return str(path), separator
    return pa.BufferReader(pa.py_buffer(path.read_bytes().replace(separator.encode(), b"\t"))), "\t"


def _seconds(column: pd.Series, path: Path) -> pd.Series:
    """Whole seconds since the epoch, from numbers or from dates and times."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all():
        return pd.Series(np.floor(numbers.to_numpy(np.float64)).astype(np.int64))
    when = pd.to_datetime(column, errors="coerce", utc=True, format="mixed")
    bad = when.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise UserError(f"{path}: bad timestamp {str(column.iloc[row])!r} on data row {row + 1}")
    return (when - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
