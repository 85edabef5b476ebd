"""Who a process is (host, pid, start time) and whether it still runs, so that what it left behind can be judged."""

from __future__ import annotations

import os
import socket

import psutil

HOST = socket.gethostname()


def this_process() -> dict:
    """This process as a record another process can check: a reused pid has another start time."""
    return process_record(os.getpid())


def process_record(pid: int) -> dict:
    return {"host": HOST, "pid": pid, "started": round(psutil.Process(pid).create_time(), 2)}


def is_alive(record: dict) -> bool | None:
    """Whether the process a record names still runs; None when it ran on another host and cannot be checked."""
    if record.get("host") != HOST:
        return None
    try:
        process = psutil.Process(int(record["pid"]))
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
    except psutil.AccessDenied:
        return True
    except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):
        return False
    return abs(started - float(record.get("started", started))) < 1.0
