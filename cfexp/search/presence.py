"""Which processes work in a study right now, so that no other command ends its parent run under them.

A process enters a study when it opens it, says so again at each claim, and leaves when it is done with it; the
record lives in the study (user attr `cfexp.in`), written under the stores' lock. A process on this host counts
while it runs; one on another host (which cannot be checked) for GRACE_SECONDS after it last said so, and for as
long as it holds a running trial (whose heartbeat Optuna watches) or the study's final fit.
"""

from __future__ import annotations

import time

import optuna

from cfexp import keys
from cfexp.search.study_store import GRACE_SECONDS
from cfexp.system.processes import is_alive, this_process

IN = keys.IN


def enter(study: optuna.Study) -> None:
    """This process works in the study (again, at each claim: a remote reader's sign of life)."""
    me = this_process()
    study.set_user_attr(IN, [r for r in _present(study) if not _same(r, me)] + [{**me, "since": time.time()}])


def leave(study: optuna.Study) -> bool:
    """This process is done with the study; whether nobody else is in it now."""
    me = this_process()
    others = [r for r in _present(study) if not _same(r, me)]
    study.set_user_attr(IN, others)
    return not others


def anyone_in(study: optuna.Study) -> bool:
    return bool(_present(study))


def _present(study: optuna.Study) -> list[dict]:
    records = study.user_attrs.get(IN) or []
    return [r for r in records if _counts(r)]


def _counts(record: dict) -> bool:
    alive = is_alive(record)
    if alive is None:  # another host
        return time.time() - record.get("since", 0) <= GRACE_SECONDS
    return alive


def _same(a: dict, b: dict) -> bool:
    return a.get("host") == b.get("host") and a.get("pid") == b.get("pid")
