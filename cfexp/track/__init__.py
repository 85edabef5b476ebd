"""Everything MLflow: the store, experiments, parent and child runs, per-epoch metrics, artifacts and models."""

import logging
import os

# A research harness on an offline machine has nothing to report home; set before mlflow reads them. MLflow's HTTP
# client would retry a dead server for minutes per call; cfexp retries each call itself (track.store.retrying).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a line (and a request) per run ended

from cfexp.track.epochs import EpochLogger
from cfexp.track.store import (
    ARTIFACT_ROOT,
    DEFAULT_DB,
    TrackingError,
    default_uri,
    is_default,
    preflight,
    tracking_uri,
)
from cfexp.track.tracker import Tracker

logging.getLogger("mlflow").setLevel(logging.ERROR)
logging.getLogger("alembic").setLevel(logging.WARNING)

__all__ = [
    "ARTIFACT_ROOT",
    "DEFAULT_DB",
    "EpochLogger",
    "Tracker",
    "TrackingError",
    "default_uri",
    "is_default",
    "preflight",
    "tracking_uri",
]
