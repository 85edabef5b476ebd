"""Every database call a study makes waits out a restarting database, whichever call the restart hits."""

import inspect
import logging
import re

import optuna
import pytest
from optuna.storages import _cached_storage
from sqlalchemy.exc import OperationalError, PendingRollbackError

from cfexp.search.study_store import DATABASE_CALLS, patient_storage, patiently


def test_every_call_optunas_cached_storage_makes_on_the_database_is_patient():
    # Optuna wraps every RDBStorage in _CachedStorage, which reaches the backend through private calls as well.
    made = set(re.findall(r"self\._backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    settings = {"get_heartbeat_interval", "get_heartbeat_stale_trial_callback"}  # no database behind these
    assert made - settings <= set(DATABASE_CALLS), sorted(made - settings - set(DATABASE_CALLS))


def test_a_lost_connection_is_retried_and_a_bad_request_is_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 2:
            raise optuna.exceptions.StorageInternalError("commit") from OperationalError("x", {}, Exception("down"))
        return "answered"

    assert patiently(flaky, "db")() == "answered" and len(calls) == 2

    def bad():
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError, match="not a connection problem"):
        patiently(bad, "db")()


def test_a_dead_session_optuna_failed_on_after_catching_the_restart_is_retried():
    # What PostgreSQL's shutdown did under `_get_trials`: Optuna caught the driver's error, fell back to a slower
    # query on the same session, which then refused to run until rolled back.
    calls = []

    def after_a_restart():
        calls.append(1)
        if len(calls) < 2:
            try:
                raise OperationalError("SELECT", {}, Exception("terminating connection due to administrator command"))
            except OperationalError:
                try:
                    raise PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
                except PendingRollbackError as pending:
                    raise optuna.exceptions.StorageInternalError("commit") from pending
        return "answered"

    assert patiently(after_a_restart, "db")() == "answered" and len(calls) == 2


def test_optunas_warning_about_a_restarting_database_is_left_to_the_patient_call(tmp_path, caplog):
    storage = patient_storage(optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/s.db"), "db")
    rdb_log = logging.getLogger(type(storage).__module__)
    with caplog.at_level(logging.WARNING, logger=rdb_log.name):
        rdb_log.warning("Caught an error from sqlalchemy: (psycopg.errors.AdminShutdown) terminating connection")
        rdb_log.warning("Caught an error from sqlalchemy: too many SQL variables. Falling back to a slower one.")
    assert [r.getMessage() for r in caplog.records] == [
        "Caught an error from sqlalchemy: too many SQL variables. Falling back to a slower one."
    ]
