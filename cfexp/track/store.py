"""The MLflow tracking store: where it is, checked up front, created and migrated once, and retried when it falters.

Several processes may open the default SQLite store at once (two sweeps started together): the first one creates
and migrates the schema under a file lock while the others wait, and the database is switched to WAL so that
readers (the UI, a report) never block a sweep's writes. MLflow itself sets SQLite's busy timeout (20 s) on every
session; what still fails after that is retried by `retrying`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

import requests
from filelock import FileLock, Timeout
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from cfexp.errors import UserError
from cfexp.system.redact import first_line, redact

DEFAULT_DB = Path("mlruns") / "mlflow.db"  # i.e. sqlite:///mlruns/mlflow.db, artifacts under mlruns/artifacts
ARTIFACT_ROOT = Path("mlruns") / "artifacts"
BUSY_SECONDS = 20  # as long as MLflow's own busy_timeout: a store locked longer than this is reported as locked
LOCK_SECONDS = 300  # waiting for another process to finish creating the store
MIN_FREE_MB = 10
ATTEMPTS = 3  # a tracking call is tried this many times
BACKOFF_SECONDS = (0.5, 1.5)  # the waits between tries
PERMANENT = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS", "BAD_REQUEST"}
# How a server that is down (or whose database is) shows through MLflow's client, once its own retries are spent.
UNREACHABLE = ("Max retries exceeded", "Connection refused", "Connection aborted", "RemoteDisconnected")
UNREACHABLE += tuple(f"error code {code} != 200" for code in (500, 502, 503, 504))
# A store that stops answering is waited for this long, call by call (as the study database is: study_store).
PATIENCE_SECONDS = float(os.environ.get("CFEXP_STORE_PATIENCE", 120))


class TrackingError(Exception):
    """A tracking call that still failed after its retries."""


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, as MLflow users expect; else the project's SQLite store under mlruns/.

    The default is made absolute: MLflow caches stores by URI, and a relative one would follow a chdir.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def default_uri() -> str:
    return f"sqlite:///{DEFAULT_DB.resolve()}"


def is_default(uri: str) -> bool:
    return uri == default_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:// URI (None for other stores and for an in-memory database)."""
    if not uri.startswith("sqlite:"):
        return None
    try:
        database = make_url(uri).database
    except ArgumentError:
        return None
    return Path(database) if database and database != ":memory:" else None


def preflight(uri: str) -> None:
    """Check the store without creating anything: a writable folder and a sound database, or a server that answers.
    Whatever is wrong is a UserError: one line, before any work."""
    database = sqlite_path(uri)
    if database is not None:
        check_writable(database.parent)
        if is_default(uri):
            check_writable(ARTIFACT_ROOT)
        if database.exists() and database.stat().st_size:
            _check_sqlite(database)
    elif uri.startswith(("http://", "https://")):
        _check_server(uri)
    elif "://" not in uri and not uri.startswith("databricks"):
        raise UserError(f"MLFLOW_TRACKING_URI={uri!r}: the file store is not supported; use sqlite:///PATH or a server")


def open_client(uri: str) -> MlflowClient:
    """A client on a store that is ready to use, checked first (`preflight`), and created if new."""
    preflight(uri)
    database = sqlite_path(uri)
    if database is not None:
        return _open_sqlite(uri, database)
    try:
        client = MlflowClient(uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # a server, driver or database can fail in many ways; all mean "not usable"
        raise UserError(f"cannot use the MLflow tracking store {redact(uri)}: {first_line(exc)}") from None
    return client


def check_writable(folder: Path) -> None:
    """The folder (or, while it does not exist yet, the folder it will be made in) takes a file and has room for a
    sweep's artifacts. Nothing is created."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{existing} is a file where the store's folder should be; move it aside")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        free_mb = shutil.disk_usage(existing).free / 2**20
    except OSError as exc:
        raise UserError(f"cannot write to {folder}/: {exc.strerror or exc}") from None
    if free_mb < MIN_FREE_MB:
        raise UserError(f"only {free_mb:.1f} MB free under {folder}/ (a sweep needs at least {MIN_FREE_MB} MB)")


def _open_sqlite(uri: str, database: Path) -> MlflowClient:
    try:
        database.parent.mkdir(parents=True, exist_ok=True)  # filelock < 3.13 does not make its lock file's folder
        with FileLock(f"{database}.lock", timeout=LOCK_SECONDS):
            client = MlflowClient(uri)
            client.search_experiments(max_results=1)  # creates and migrates the schema, once, under the lock
            with sqlite3.connect(database, timeout=BUSY_SECONDS) as connection:
                connection.execute("PRAGMA journal_mode=WAL")  # persistent: readers stop blocking writers
    except Timeout:
        raise UserError(f"{database}.lock: another process held it {LOCK_SECONDS} s while creating the store") from None
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot use the MLflow store {database}: {first_line(exc)}") from None
    return client


def _check_sqlite(database: Path) -> None:
    """Not corrupt, and writable within the busy timeout (i.e. not held locked by another process)."""
    try:
        connection = sqlite3.connect(database, timeout=BUSY_SECONDS)
        try:
            verdict = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
            connection.execute("BEGIN IMMEDIATE")
            connection.rollback()
        finally:
            connection.close()
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise UserError(f"{database} is locked by another process (waited {BUSY_SECONDS} s)") from None
        raise UserError(f"{database} is not a usable SQLite database: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{database} is corrupt or not an SQLite database ({exc}); move it aside") from None


def _check_server(uri: str) -> None:
    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=10)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip()
        raise UserError(f"cannot reach the MLflow tracking server at {redact(uri)} ({reason})") from None


def retrying(call, *args, **kwargs):
    """`call(*args, **kwargs)`, tried ATTEMPTS times with a backoff; a store that cannot be reached (a tracking server
    or its database restarting) is waited for up to PATIENCE_SECONDS. The last failure is raised as TrackingError."""
    attempt, deadline = 0, None
    while True:
        try:
            return call(*args, **kwargs)
        except Exception as exc:  # a full disk, a dropped connection, a locked database: worth another try
            if isinstance(exc, MlflowException) and exc.error_code in PERMANENT:
                raise TrackingError(first_line(exc)) from exc
            attempt += 1
            if unreachable(exc):
                deadline = deadline or time.monotonic() + PATIENCE_SECONDS
                if time.monotonic() < deadline:
                    time.sleep(min(0.5 * 2**attempt, 5.0))
                    continue
            elif attempt < ATTEMPTS:
                time.sleep(BACKOFF_SECONDS[min(attempt - 1, len(BACKOFF_SECONDS) - 1)])
                continue
            raise TrackingError(first_line(exc)) from exc


def unreachable(exc: Exception) -> bool:
    """A server that does not answer, or answers that it cannot reach its own database (a restart, not a bug)."""
    if isinstance(exc, requests.ConnectionError):
        return True
    text = str(exc)
    if isinstance(exc, RestException) and "OperationalError" in text:  # the server's own database is down
        return True
    return any(sign in text for sign in UNREACHABLE)
