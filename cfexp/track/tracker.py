"""The Tracker: one cfexp experiment's MLflow experiment, its runs, and a background thread for what can wait."""

from __future__ import annotations

import json
import math
import subprocess
import tempfile
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import DatasetInput, InputTag, Metric, Param, Run, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from cfexp import keys
from cfexp.errors import UserError
from cfexp.system.redact import first_line
from cfexp.track.background import Background
from cfexp.track.figures import learning_curve, png_of
from cfexp.track.store import ARTIFACT_ROOT, TrackingError, is_default, open_client, retrying, tracking_uri

STATUS = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED", "RUNNING": "RUNNING"}
STATUS["INTERRUPTED"] = "KILLED"  # a study's parent whose sweep stopped before its budget was spent
MAX_PARAM_LENGTH = 6000
MODEL_TAG = keys.MODEL  # set on a run once its model is logged: the logged model's id
# MLflow 3's UI opens an experiment by its kind: model development opens the runs, not the GenAI overview.
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development"}

# The signature says what the model takes; an input example would add nothing. Filtered for the whole process:
# catch_warnings on the tracker's thread is not thread-safe (leaving it restores the filters the main thread set).
warnings.filterwarnings("ignore", ".*An input example was not provided when logging the model", UserWarning)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


class Tracker:
    """One cfexp experiment's MLflow experiment.

    Calls whose answer the caller needs (creating a run) block; per-epoch metrics, artifacts and run endings go to
    one background thread, in order, so that rendering a learning curve overlaps the next trial's training. Every
    call is retried (`track.store.retrying`); a background call that still fails is kept, with its run, for `wait`
    or `flush` to report. `seconds` is the time the caller spent blocked on tracking; `background_seconds` the
    worker's busy time.
    """

    def __init__(self, experiment: str, uri: str | None = None):
        self.uri = uri or tracking_uri()
        self.seconds = 0.0
        self._background = Background()
        with self.timed():
            self.client = open_client(self.uri)
            mlflow.set_tracking_uri(self.uri)
            self.experiment_id = self._experiment(experiment)
            # Where MLflow puts a logged model that is given a run id but no active run (see _log_model).
            mlflow.set_experiment(experiment_id=self.experiment_id)
            self.commit = git_commit()
            self.dataset_input: DatasetInput | None = None

    def _experiment(self, name: str) -> str:
        """The experiment's id, created if need be (another process may create it at the same moment)."""
        try:
            found = self.client.get_experiment_by_name(name)
            if found is None:
                location = (ARTIFACT_ROOT / name).resolve().as_uri() if is_default(self.uri) else None
                try:
                    return self.client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    found = self.client.get_experiment_by_name(name)
        except MlflowException as exc:
            raise UserError(f"cannot open the MLflow experiment {name!r}: {first_line(exc)}") from None
        if found.lifecycle_stage == "deleted":
            raise UserError(
                f"the MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) or purge it "
                "(mlflow gc)"
            )
        if found.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:  # made by an older cfexp
            with suppress(MlflowException):  # only how the UI opens it
                self.client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, EXPERIMENT_TAGS[EXPERIMENT_KIND])
        return found.experiment_id

    # ------------------------------------------------------------ the background thread (cfexp.track.background)

    def later(self, fn, *args, run_id: str | None = None, **kwargs) -> None:
        """Run a tracking call on the background thread, after those already queued, retried as every call is."""
        self._background.submit(fn, *args, run_id=run_id, **kwargs)

    def wait(self, run_id: str) -> list[str]:
        """Block until every call queued so far for `run_id` is done; the failures they met (each told once)."""
        with self.timed():
            self._background.wait(run_id)
        return self._background.take(run_id)

    def flush(self) -> None:
        """Wait for every queued call; raise TrackingError for any failure not told yet."""
        with self.timed():
            self._background.wait()
        errors = self._background.take()
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise TrackingError(errors[0] + more)

    def close(self) -> list[str]:
        """Wait for the background thread and stop it; returns the failures nobody was told of."""
        with self.timed():
            self._background.shutdown()
        return self._background.take()

    @property
    def background_seconds(self) -> float:
        return self._background.seconds

    def call(self, fn, *args, **kwargs):
        """A blocking tracking call, retried; TrackingError when it still fails."""
        with self.timed():
            return retrying(fn, *args, **kwargs)

    @contextmanager
    def timed(self):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    # ------------------------------------------------------------ runs

    def set_dataset(self, frame: pd.DataFrame, name: str, source: str, digest: str) -> None:
        """The ratings, logged as an MLflow dataset input of every run from here on."""
        with self.timed(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLflow hints that integer ids cannot hold NaN: they never do here
            dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest, targets="rating")
            self.dataset_input = DatasetInput(
                dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "training")]
            )

    def start_run(self, name: str, params: dict, tags: dict, parent_id: str | None = None) -> str:
        tags = {"git.commit": self.commit, **tags}
        if parent_id:
            tags[MLFLOW_PARENT_RUN_ID] = parent_id
        run_id = self.call(self.client.create_run, self.experiment_id, run_name=name, tags=_strings(tags)).info.run_id
        self.call(self.client.log_batch, run_id, params=[Param(k, _param(v)) for k, v in params.items()])
        if self.dataset_input is not None:
            self.call(self.client.log_inputs, run_id, datasets=[self.dataset_input])
        return run_id

    def search(self, filter_string: str, max_results: int = 1000) -> list[Run]:
        """Runs of this experiment matching an MLflow filter."""
        return self.call(
            self.client.search_runs, [self.experiment_id], filter_string=filter_string, max_results=max_results
        )

    def find_parent(self, study: str) -> str | None:
        """The parent run of an Optuna study, so that a resumed sweep keeps adding to it."""
        runs = self.search(f"tags.`optuna.study` = '{study}' and tags.`{keys.ROLE}` = 'study'", max_results=1)
        return runs[0].info.run_id if runs else None

    def get_run(self, run_id: str) -> Run:
        return self.call(self.client.get_run, run_id)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """One batched call for all of an epoch's metrics (non-finite values are left out, as MLflow needs)."""
        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and math.isfinite(v)]
        if batch:
            self.later(self.client.log_batch, run_id, metrics=batch, run_id=run_id)

    def set_tags(self, run_id: str, tags: dict) -> None:
        batch = [RunTag(k, v) for k, v in _strings(tags).items()]
        self.later(self.client.log_batch, run_id, tags=batch, run_id=run_id)

    def close_run(self, run_id: str, config: dict, result, state: str, reason: str = "") -> None:
        """A run's outcome (`log_outcome`) and its end (`end_run`), for a run no study keeps (cfexp train)."""
        self.log_outcome(run_id, config, result, state, reason)
        self.end_run(run_id, state)

    def log_outcome(self, run_id: str, config: dict, result, state: str, reason: str = "") -> None:
        """Final metrics, why it failed or was pruned, and the artifacts of a run's FitResult (or None); the run
        stays RUNNING: a trial's run ends (`end_run`) only once Optuna holds the trial's outcome."""
        history = result.history if result is not None else []
        metrics = {}
        if history:
            metrics = {"best_val_loss": result.best_val_loss, "seconds": result.seconds, **result.ranking}
            if result.test_loss is not None:
                metrics["test_loss"] = result.test_loss
        self.log_metrics(run_id, metrics, step=len(history))
        if state == "FAIL":
            self.set_tags(run_id, {keys.FAIL_REASON: reason})
        elif state == "PRUNED":
            self.set_tags(run_id, {keys.PRUNED: reason})
        self.log_artifacts(run_id, config, history)

    def end_run(self, run_id: str, state: str, tags: dict | None = None, status: str | None = None) -> None:
        """The run's `optuna.state` (and any last tags), then its MLflow status (by default the state's): always a
        run's last two writes."""
        self.set_tags(run_id, {"optuna.state": state, **(tags or {})})
        self.finish(run_id, status or state)

    def log_artifacts(self, run_id: str, config: dict, history: list[dict]) -> None:
        """The resolved config as JSON, the epoch history as CSV, and the learning curve as PNG."""
        self.later(self.client.log_dict, run_id, config, "config.json", run_id=run_id)
        if history:
            csv = pd.DataFrame(history).to_csv(index=False)
            self.later(self.client.log_text, run_id, csv, "history.csv", run_id=run_id)
            title = config.get("name", "")
            self.log_plot(run_id, lambda: learning_curve(history, title), "learning_curve.png")

    def log_plot(self, run_id: str, plot, path: str) -> None:
        """Draw `plot()` (a Figure, a pyplot Axes, or None) on the background thread and log it as a PNG at `path`."""
        self.later(self._log_drawing, run_id, plot, path, run_id=run_id)

    def _log_drawing(self, run_id: str, draw, path: str) -> None:
        drawn = draw()
        if drawn is None:
            return
        if hasattr(drawn, "savefig"):  # a Figure; else a pyplot Axes
            self.client.log_figure(run_id, drawn, path)
            return
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(path).name
            local.write_bytes(png_of(drawn))
            self.client.log_artifact(run_id, str(local), str(Path(path).parent) if "/" in path else None)

    def log_folder(self, run_id: str, folder: Path, artifact_path: str) -> None:
        """Every file of a folder, as artifacts under `artifact_path` (blocking: the caller reports on it)."""
        self.flush()
        self.call(self.client.log_artifacts, run_id, str(folder), artifact_path)

    def finish(self, run_id: str, state: str) -> None:
        self.later(self.client.set_terminated, run_id, STATUS[state], run_id=run_id)

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a study's parent, when a process works in its study again)."""
        self.later(self.client.update_run, run_id, status="RUNNING", run_id=run_id)

    def log_model(self, run_id: str, model) -> None:
        """Log a pyfunc PythonModel (cfexp.serve.pyfunc.Recommender) with its `signature`, as the run's `model`.

        On the background thread, so the caller must not change `model` afterwards (the sweep hands over a copy).
        MLflow keeps the fluent API's active run per thread, so `start_run` there does not touch the caller's."""
        self.later(self._log_model, run_id, model, run_id=run_id)

    def _log_model(self, run_id: str, model) -> None:
        import mlflow.pyfunc
        import torch
        from mlflow.models import Model

        # Model.log with the run's id, not pyfunc.log_model inside start_run(run_id=...): that would set the run
        # RUNNING and then FINISHED, and a run's status is written last, once its outcome is in Optuna.
        info = Model.log(
            artifact_path=None,
            name="model",
            flavor=mlflow.pyfunc,
            python_model=model,
            signature=model.signature,
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "pandas", "cfexp"],
            run_id=run_id,
        )
        self.client.set_tag(run_id, MODEL_TAG, info.model_id)  # models:/<id> is what the registry versions


def _strings(tags: dict) -> dict[str, str]:
    return {k: str(v) for k, v in tags.items() if v is not None}


def _param(value) -> str:
    text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
    return text[:MAX_PARAM_LENGTH]
