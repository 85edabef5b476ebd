"""Every database call a study makes waits out a restarting database, whichever call the restart hits."""

import inspect
import re

import optuna
import pytest
from optuna.storages import _cached_storage
from sqlalchemy.exc import OperationalError

from cfexp.search.study_store import DATABASE_CALLS, patiently


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
