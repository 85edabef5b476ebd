"""Per-epoch metrics of a run, as a trainer callback that batches them into few MLflow calls."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlflow.entities import Metric

from cfexp.system import faults

if TYPE_CHECKING:
    from cfexp.track.tracker import Tracker


class EpochLogger:
    """A trainer callback that logs each epoch's metrics (step = epoch), batched: one call at most every
    FLUSH_SECONDS, and one at the end of the fit. A short trial's epochs then cost one write instead of one each
    (about 10 ms of a SQLite store's time apiece); a long trial's curves still appear in the UI as it runs."""

    FLUSH_SECONDS = 2.0

    def __init__(self, tracker: Tracker, run_id: str, keys: Sequence[str]):
        """`keys`: the epoch metrics to log (a variant's `epoch_metrics`); ranking metrics are logged when computed."""
        self.tracker, self.run_id, self.keys = tracker, run_id, frozenset(keys)
        self.pending: list[Metric] = []
        self.flushed = time.monotonic()

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        faults.point("training")
        now = int(time.time() * 1000)
        keys = [k for k in metrics if k in self.keys or "_at_" in k]  # the ranking metrics, when computed
        self.pending += [Metric(k, float(metrics[k]), now, epoch) for k in keys if math.isfinite(metrics[k])]
        if time.monotonic() - self.flushed >= self.FLUSH_SECONDS:
            self.flush()

    def on_fit_end(self, result) -> None:
        self.flush()

    def flush(self) -> None:
        if self.pending:
            self.tracker.later(self.tracker.client.log_batch, self.run_id, metrics=self.pending, run_id=self.run_id)
        self.pending, self.flushed = [], time.monotonic()
