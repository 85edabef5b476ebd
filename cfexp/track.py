"""Everything MLflow: the store, experiments, parent and child runs, per-epoch metrics, artifacts and models."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import subprocess
import tempfile
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

# A research harness on an offline machine has nothing to report home; set before mlflow reads it.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

DEFAULT_DB = Path("mlruns") / "mlflow.db"  # i.e. sqlite:///mlruns/mlflow.db, artifacts under mlruns/artifacts
ARTIFACT_ROOT = Path("mlruns") / "artifacts"
STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}
MAX_PARAM_LENGTH = 6000

logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.WARNING)


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI when set, as MLflow users expect; else the project's SQLite store under mlruns/.

    The default is made absolute: MLflow caches stores by URI, and a relative one would follow a chdir.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def default_uri() -> str:
    return f"sqlite:///{DEFAULT_DB.resolve()}"


def is_default(uri: str) -> bool:
    return uri == default_uri()


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


class Tracker:
    """One cfexp experiment's MLflow experiment.

    Calls whose answer the caller needs (creating a run) block; per-epoch metrics, artifacts and run endings go to
    one background thread, in order, so that rendering a learning curve overlaps the next trial's training.
    `seconds` is the time the caller spent blocked on tracking; `background_seconds` the worker's busy time.
    """

    def __init__(self, experiment: str, uri: str | None = None):
        self.uri = uri or tracking_uri()
        self.seconds = 0.0
        self.background_seconds = 0.0
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfexp-track")
        self._pending: list[Future] = []
        with self.timed():
            if is_default(self.uri):
                ARTIFACT_ROOT.mkdir(parents=True, exist_ok=True)
            mlflow.set_tracking_uri(self.uri)
            self.client = MlflowClient(self.uri)
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                location = (ARTIFACT_ROOT / experiment).resolve().as_uri() if is_default(self.uri) else None
                self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
            else:
                self.experiment_id = found.experiment_id
            self.commit = git_commit()
            self.dataset_input: DatasetInput | None = None

    def later(self, fn, *args, **kwargs) -> None:
        """Run a tracking call on the background thread, after those already queued."""

        def job():
            started = time.perf_counter()
            try:
                fn(*args, **kwargs)
            finally:
                self.background_seconds += time.perf_counter() - started

        self._pending = [f for f in self._pending if not f.done() or f.exception()]
        self._pending.append(self._worker.submit(job))

    def flush(self) -> None:
        """Wait for the background thread; re-raise the first error it met."""
        with self.timed():
            pending, self._pending = self._pending, []
            for future in pending:
                future.result()

    def close(self) -> None:
        self.flush()
        self._worker.shutdown()

    @contextmanager
    def timed(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def set_dataset(self, frame: pd.DataFrame, name: str, source: str, digest: str) -> None:
        """The ratings, logged as an MLflow dataset input of every run from here on."""
        with self.timed(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow hints that integer ids cannot hold NaN: they never do here
            dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest, targets="rating")
            self.dataset_input = DatasetInput(
                dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")]
            )

    def start_run(self, name: str, params: dict, tags: dict, parent_id: str | None = None) -> str:
        with self.timed():
            tags = {"git.commit": self.commit, **tags}
            if parent_id:
                tags[MLFLOW_PARENT_RUN_ID] = parent_id
            run = self.client.create_run(self.experiment_id, run_name=name, tags=_strings(tags))
            run_id = run.info.run_id
            self.client.log_batch(run_id, params=[Param(k, _param(v)) for k, v in params.items()])
            if self.dataset_input is not None:
                self.client.log_inputs(run_id, datasets=[self.dataset_input])
            return run_id

    def find_parent(self, study: str) -> str | None:
        """The parent run of an Optuna study, so that a resumed sweep keeps adding to it."""
        with self.timed():
            runs = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`optuna.study` = '{study}' and tags.`cfexp.role` = 'study'",
                max_results=1,
            )
            return runs[0].info.run_id if runs else None

    def epoch_logger(self, run_id: str) -> EpochLogger:
        return EpochLogger(self, run_id)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """One batched call for all of an epoch's metrics (non-finite values are left out, as MLflow needs)."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        if batch:
            self.later(self.client.log_batch, run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: dict) -> None:
        self.later(self.client.log_batch, run_id, tags=[RunTag(k, v) for k, v in _strings(tags).items()])

    def close_run(self, run_id: str, config: dict, result, state: str, reason: str = "") -> None:
        """Final metrics, the state tags, the artifacts, and the MLflow status for a run's FitResult (or None)."""
        history = result.history if result is not None else []
        metrics = {}
        if history:
            metrics = {"best_val_loss": result.best_val_loss, "seconds": result.seconds}
            if result.test_loss is not None:
                metrics["test_loss"] = result.test_loss
        self.log_metrics(run_id, metrics, step=len(history))
        tags = {"optuna.state": state}
        if state == "FAIL":
            tags["cfexp.fail_reason"] = reason
        elif state == "PRUNED":
            tags["cfexp.pruned"] = reason
        self.set_tags(run_id, tags)
        self.log_artifacts(run_id, config, history)
        self.finish(run_id, state)

    def log_artifacts(self, run_id: str, config: dict, history: list[dict]) -> None:
        """The resolved config as JSON, the epoch history as CSV, and the learning curve as PNG."""
        self.later(self._log_artifacts, run_id, config, list(history))

    def _log_artifacts(self, run_id: str, config: dict, history: list[dict]) -> None:
        self.client.log_dict(run_id, config, "config.json")
        if history:
            self.client.log_text(run_id, pd.DataFrame(history).to_csv(index=False), "history.csv")
            self.client.log_figure(run_id, learning_curve(history, config.get("name", "")), "learning_curve.png")

    def log_plot(self, run_id: str, plot, path: str) -> None:
        """Draw `plot()` (a pyplot Axes) on the background thread, the only thread that uses pyplot, and log it."""
        self.later(self._log_plot, run_id, plot, path)

    def _log_plot(self, run_id: str, plot, path: str) -> None:
        import matplotlib.pyplot as plt

        axes = plot()
        if axes is None:
            return
        buffer = io.BytesIO()
        axes.figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        plt.close(axes.figure)
        self._log_bytes(run_id, buffer.getvalue(), path)

    def _log_bytes(self, run_id: str, content: bytes, path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            local.write_bytes(content)
            self.client.log_artifact(run_id, str(local), str(Path(path).parent) if "/" in path else None)

    def log_folder(self, run_id: str, folder: Path, artifact_path: str) -> None:
        """Every file of a folder, as artifacts under `artifact_path` (blocking: the caller reports on it)."""
        self.flush()
        with self.timed():
            self.client.log_artifacts(run_id, str(folder), artifact_path)

    def finish(self, run_id: str, state: str) -> None:
        self.later(self.client.set_terminated, run_id, STATUS[state])

    def log_model(self, run_id: str, model, example) -> None:
        """Log a torch model so that `mlflow.pytorch.load_model` (or pyfunc) loads it back and predicts.

        On the background thread, so the caller must not change `model` afterwards (the sweep hands over a copy).
        MLflow keeps the fluent API's active run per thread, so `start_run` there does not touch the caller's."""
        self.later(self._log_model, run_id, model, example)

    def _log_model(self, run_id: str, model, example) -> None:
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        with torch.no_grad():
            signature = infer_signature(example.numpy(), model(example).numpy())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mlflow.start_run(run_id=run_id):
                mlflow.pytorch.log_model(
                    model,
                    name="model",
                    signature=signature,
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "cfexp"],
                    serialization_format="pickle",
                )
        # start_run(run_id=...) ends the run FINISHED; that is the state a run with the best model has.


class EpochLogger:
    """A trainer callback that logs each epoch's metrics to a run in one batched call."""

    KEYS = ("train_loss", "val_loss", "val_rmse", "val_mae", "lr", "noise_precision")

    def __init__(self, tracker: Tracker, run_id: str):
        self.tracker, self.run_id = tracker, run_id

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        self.tracker.log_metrics(self.run_id, {k: metrics[k] for k in self.KEYS if k in metrics}, step=epoch)


def learning_curve(history: list[dict], title: str):
    """A pyplot-free figure, so that it can be drawn off the main thread."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.2), dpi=80)
    ax = figure.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE", title=title)
    ax.legend()
    figure.subplots_adjust(left=0.14, bottom=0.15, right=0.97, top=0.9)
    return figure


def _strings(tags: dict) -> dict[str, str]:
    return {k: str(v) for k, v in tags.items() if v is not None}


def _param(value) -> str:
    text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
    return text[:MAX_PARAM_LENGTH]
