"""The Optuna side of the stores: the journal file or an RDB, opened for several processes, and a lock across them.

The lock serialises the few steps that must not interleave between processes sharing a study: creating it and
enqueueing its warm starts, finding or creating its MLflow parent run, failing lost trials, and claiming a slot of
the budget (counting, then asking Optuna for the trial). It is a file lock for the journal and for SQLite, and an
advisory lock for PostgreSQL (pg_advisory_lock) or MySQL (GET_LOCK), so that it holds across machines.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from filelock import FileLock
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError

from cfexp import keys
from cfexp.errors import UserError
from cfexp.system.redact import first_line, redact

DEFAULT_JOURNAL = Path("mlruns") / "optuna-journal.log"
HEARTBEAT_SECONDS = int(os.environ.get("CFEXP_HEARTBEAT_SECONDS", 10))  # a running trial says it is alive this often
GRACE_SECONDS = int(os.environ.get("CFEXP_GRACE_SECONDS", 60))  # ...and is stale when it has not for this long
MAX_RETRIES = 3  # a trial lost this many times (its process killed every time) is not tried again
LOCK_SECONDS = 600
SQLITE_BUSY_SECONDS = 60
SCHEMA_ATTEMPTS = 5  # opening a fresh RDB that another process is creating the schema of
# A database that stops answering (restarted, failed over) is waited for this long, call by call, before the sweep
# stops in one line; what was written before stays, and the same command resumes.
PATIENCE_SECONDS = float(os.environ.get("CFEXP_STORE_PATIENCE", 120))
ADVISORY_KEY = 0x63666578  # "cfex": the one advisory lock cfexp takes in a database

# For the whole process, and so for every Optuna API cfexp uses that Optuna still calls experimental (heartbeats,
# the journal, metric names, the matplotlib plots drawn on the tracker's thread, where catch_warnings is not safe).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


class RetryLostTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a stale trial (a WAITING copy with the same params), carrying over only the failed run's id.

    Optuna's callback copies every attribute of the failed trial; its history, owner and failure marks would then
    describe the retry wrongly. `retried_trial_number` and `retry_history` work on the copy as on Optuna's own."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        kept = copy.deepcopy(trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        kept.user_attrs = {keys.REPLACES_RUN: run_id} if run_id else {}
        kept.system_attrs = {k: v for k, v in trial.system_attrs.items() if k in ("failed_trial", "retry_history")}
        # An enqueued warm start may lie outside the searched range; a stored trial's range must hold its value.
        kept.distributions = {k: _holding(d, trial.params[k]) for k, d in trial.distributions.items()}
        super().__call__(study, kept)


def _holding(distribution, value):
    """The distribution, widened to hold `value` if it does not (Optuna allows ranges to differ between trials)."""
    if distribution._contains(distribution.to_internal_repr(value)):
        return distribution
    widened = copy.copy(distribution)
    widened.low, widened.high = min(distribution.low, value), max(distribution.high, value)
    if getattr(widened, "step", None) is not None:
        widened.step = None if isinstance(widened, optuna.distributions.FloatDistribution) else 1
    return widened


RETRY = RetryLostTrial(max_retry=MAX_RETRIES)


class StoreDown(Exception):
    """The study database stopped answering for longer than PATIENCE_SECONDS."""


def _connection_lost(exc: BaseException) -> bool:
    """A database that cannot be reached now (a restart, a dropped connection), as opposed to a bad request."""
    # Optuna wraps the driver's error, and may first catch it and fail again on the dead session (a
    # PendingRollbackError raised while handling it), so the whole chain of causes is looked through.
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def patiently(call: Callable, shown: str):
    """`call`, retried while the database cannot be reached, for up to PATIENCE_SECONDS."""

    @functools.wraps(call)
    def patient(*args, **kwargs):
        deadline = None
        while True:
            try:
                return call(*args, **kwargs)
            except Exception as exc:
                if not _connection_lost(exc):
                    raise
                deadline = deadline or time.monotonic() + PATIENCE_SECONDS
                if time.monotonic() > deadline:
                    raise StoreDown(
                        f"the study store {shown} did not answer for {PATIENCE_SECONDS:.0f} s ({first_line(exc)})"
                    ) from None
                time.sleep(1.0)

    return patient


# The private RDBStorage calls that Optuna's cached storage (the wrapper every study uses) and fail_stale_trials make.
CACHED_STORAGE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    "_get_stale_trial_ids",
)
# Every RDBStorage call that reaches the database (the rest are settings and schema management).
DATABASE_CALLS = [
    name
    for name, member in vars(optuna.storages.RDBStorage).items()
    if callable(member)
    and not name.startswith("_")
    and name not in ("remove_session", "upgrade", "get_heartbeat_interval", "get_heartbeat_stale_trial_callback")
    and "version" not in name
] + list(CACHED_STORAGE_CALLS)


class _QuietOnRestart(logging.Filter):
    """Drops Optuna's multi-line warning about a query it retries when the cause is a restarting database: the
    patient call waits that out, and says in one line if it cannot."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        restart = any(mark in text.lower() for mark in _RESTART_MARKS)
        return not (text.startswith("Caught an error from sqlalchemy") and restart)


_RESTART_MARKS = ("adminshutdown", "terminating connection", "server closed the connection", "connection refused")
_RDB_LOG = logging.getLogger(optuna.storages.RDBStorage.__module__)


def patient_storage(storage: optuna.storages.RDBStorage, shown: str) -> optuna.storages.RDBStorage:
    """The storage, its database calls waiting out a database that restarts (still an RDBStorage, so that Optuna
    caches it and runs its heartbeat as on any RDB)."""
    if not any(isinstance(f, _QuietOnRestart) for f in _RDB_LOG.filters):
        _RDB_LOG.addFilter(_QuietOnRestart())
    for name in DATABASE_CALLS:
        setattr(storage, name, patiently(getattr(storage, name), shown))
    return storage


@dataclass
class StudyStore:
    """An opened Optuna storage, how to show it, and the lock its processes share."""

    storage: optuna.storages.BaseStorage
    shown: str
    lock: Callable[[], AbstractContextManager]
    missing: bool = False  # a journal file that did not exist yet: no sweep has written to it


def open_store(url: str | None) -> StudyStore:
    """The default journal under mlruns/ (several processes on one machine), a journal path, or an RDB URL.
    CFEXP_STORAGE, when set, stands in for a missing URL, as MLFLOW_TRACKING_URI does for the tracking store."""
    url = url or os.environ.get("CFEXP_STORAGE")
    if url and "://" in url:
        return _rdb(url)
    return _journal(Path(url) if url else DEFAULT_JOURNAL)


def _journal(path: Path) -> StudyStore:
    missing = not path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("ab"):
                pass
        else:
            with tempfile.TemporaryFile(dir=path.parent):
                pass
    except OSError as exc:
        raise UserError(f"cannot write the Optuna journal {path}: {exc.strerror or exc}") from None
    # An absolute path, so that the journal and its lock stay where they are if the process changes folder.
    journal = str(path.resolve())
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal, lock_obj=KernelJournalLock(f"{journal}.flock"))
    )
    lock = FileLock(f"{path}.cfexp-lock", timeout=LOCK_SECONDS)
    return StudyStore(storage, str(path), lambda: lock, missing)


class KernelJournalLock:
    """The journal's append lock as an OS file lock (flock), which the kernel releases when its holder dies.

    Optuna's default symlink lock, left behind by a process killed while appending, made the next sweep wait out
    its 30 s grace period. The journal is for processes on one machine (several machines share an RDB), where
    flock holds."""

    def __init__(self, path: str):
        self._lock = FileLock(path, timeout=LOCK_SECONDS)

    def acquire(self) -> bool:
        self._lock.acquire()
        return True

    def release(self) -> None:
        self._lock.release()


def _rdb(url: str) -> StudyStore:
    shown = redact(url)
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise UserError(f"not a database URL: {shown}") from None
    if backend not in ("postgresql", "mysql", "sqlite"):
        raise UserError(f"--storage {shown}: cfexp shares studies through PostgreSQL, MySQL or SQLite")
    engine_kwargs = (
        {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}} if backend == "sqlite" else {"pool_pre_ping": True}
    )
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RETRY,
            )
            storage = patient_storage(storage, shown)
            break
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or an unreachable server
            # ... and two processes (or machines) creating the schema of a fresh database at once: PostgreSQL refuses
            # the second CREATE TABLE (a duplicate type or relation); once the first has committed, opening works.
            racing = isinstance(exc, IntegrityError | ProgrammingError) and attempt < SCHEMA_ATTEMPTS - 1
            if not racing:
                raise UserError(f"cannot open Optuna storage {shown}: {first_line(exc)}") from None
            time.sleep(0.5 * (attempt + 1))
    if backend == "sqlite":
        database = make_url(url).database or "optuna.db"
        lock = FileLock(f"{database}.cfexp-lock", timeout=LOCK_SECONDS)
        return StudyStore(storage, shown, lambda: lock)
    return StudyStore(storage, shown, lambda: _advisory_lock(storage, backend, shown))


@contextmanager
def _advisory_lock(storage: optuna.storages.RDBStorage, backend: str, shown: str) -> Iterator[None]:
    """A lock held in the database itself, so that processes on several machines serialise on it."""
    with patiently(storage.engine.connect, shown)() as connection:
        if backend == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_KEY})
        else:
            connection.execute(text("SELECT GET_LOCK('cfexp', :seconds)"), {"seconds": LOCK_SECONDS})
        try:
            yield
        finally:
            try:
                if backend == "postgresql":
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_KEY})
                else:
                    connection.execute(text("SELECT RELEASE_LOCK('cfexp')"))
                connection.commit()
            except Exception as exc:  # a restarted server ended the session, and with it the lock
                if not _connection_lost(exc):
                    raise
