"""The tracker's background thread: tracking calls that can wait, run in order, their failures kept per run.

Per-epoch metrics, artifacts and run endings need no answer, so they go here, and rendering a learning curve
overlaps the next trial's training. A call that still fails after its retries is kept, with its run, until
someone waits for that run (`wait`) or for everything (`take`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from cfexp.system import faults
from cfexp.track.store import TrackingError, retrying


class Background:
    """One worker thread; `seconds` is its busy time."""

    def __init__(self):
        self.seconds = 0.0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfexp-track")
        self._jobs: list[tuple[str | None, Future]] = []
        self._errors: list[tuple[str | None, str]] = []
        self._errors_lock = threading.Lock()

    def submit(self, fn, *args, run_id: str | None = None, **kwargs) -> None:
        """Run a tracking call after those already queued, retried as every call is."""

        def job():
            started = time.perf_counter()
            faults.point("logging")
            try:
                retrying(fn, *args, **kwargs)
            except TrackingError as exc:
                with self._errors_lock:
                    self._errors.append((run_id, f"{getattr(fn, '__name__', 'call')}: {exc}"))
            finally:
                self.seconds += time.perf_counter() - started

        self._jobs = [(rid, future) for rid, future in self._jobs if not future.done()]
        self._jobs.append((run_id, self._worker.submit(job)))

    def wait(self, run_id: str | None = None) -> None:
        """Block until every call queued so far (for `run_id`, or all of them) is done."""
        for rid, future in list(self._jobs):
            if run_id is None or rid == run_id:
                future.result()

    def take(self, run_id: str | None = None) -> list[str]:
        """The failures not told yet (of `run_id`'s calls, or of all), each told once."""
        with self._errors_lock:
            mine = [e for e in self._errors if run_id is None or e[0] == run_id]
            self._errors = [e for e in self._errors if e not in mine]
        return [message for _, message in mine]

    def shutdown(self) -> None:
        self.wait()
        self._worker.shutdown()
