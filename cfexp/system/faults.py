"""Named instants in a sweep's life where a chaos test stops the process, so as to kill it exactly there.

`CFEXP_PAUSE_AT=phase:n` makes a process stop itself (SIGSTOP) the n-th time it reaches `phase`; the test then
kills it with SIGKILL, as an operator or the kernel would. Without the variable a point costs one comparison.
The phases, in a trial's order: claim, run, training, ranking, logging, told, summary, final, registration.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

ENV = "CFEXP_PAUSE_AT"
PHASES = ("claim", "run", "training", "ranking", "logging", "told", "summary", "final", "registration")


def _target() -> tuple[str, int] | None:
    phase, _, count = os.environ.get(ENV, "").partition(":")
    return (phase, int(count or 1)) if phase else None


_TARGET = _target()
_seen: Counter = Counter()
_lock = threading.Lock()


def point(phase: str) -> None:
    """Stop here if this is the instant the chaos test asked for."""
    if _TARGET is None or _TARGET[0] != phase:
        return
    with _lock:
        _seen[phase] += 1
        now = _seen[phase] == _TARGET[1]
    if now:
        os.kill(os.getpid(), signal.SIGSTOP)
