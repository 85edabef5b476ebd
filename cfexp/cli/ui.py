"""`cfexp ui` (`make ui`): the MLflow UI on loopback, and the link that opens an experiment's runs table.

On a tracking server (`MLFLOW_TRACKING_URI=http://…`) the server is the UI: cfexp prints its link and starts nothing.

MLflow 3 opens an experiment in its GenAI overview unless told otherwise; `?workflowType=machine_learning` opens
the runs ("Model training"), where the study parents and their trials are. cfexp also tags its experiments
`mlflow.experimentKind = custom_model_development`, so that the UI picks that view by itself.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import webbrowser

from cfexp.errors import UserError
from cfexp.system.redact import redact


def runs_link(base: str, experiment_id: str | None) -> str:
    """The page that opens `experiment_id`'s runs table on the UI at `base` (its front page without one)."""
    base = base.rstrip("/") + "/"
    return f"{base}#/experiments/{experiment_id}?workflowType=machine_learning" if experiment_id else base


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def experiment_id(name: str) -> str | None:
    from cfexp.track import store

    found = store.open_client(store.tracking_uri()).get_experiment_by_name(name)
    return found.experiment_id if found else None


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def _wait_for(port: int, process: subprocess.Popen, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if not _port_free(port):
            return True
        time.sleep(0.3)
    return False


def _has_browser() -> bool:
    """A graphical browser to open (a console one would take over the terminal the server logs to)."""
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(args: argparse.Namespace) -> int:
    from cfexp.config.experiment import load_experiment
    from cfexp.track import store

    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    name = load_experiment(args.experiment).name
    uri = store.tracking_uri()
    found = experiment_id(name)
    if is_server(uri):
        link = runs_link(redact(uri), found)  # the server's own UI; a password in the URL never shows
        print(link if args.print_only else f"the tracking server's UI, the runs of experiment {name!r}: {link}")
        return 0
    link = runs_link(f"http://127.0.0.1:{args.port}", found)
    if args.print_only:
        print(link)
        return 0
    if not _port_free(args.port):
        raise UserError(f"port {args.port} is taken: choose another with make ui PORT=5001 (or --port)")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1"]
    server = subprocess.Popen([*command, "--port", str(args.port)])
    try:
        if not _wait_for(args.port, server):
            raise UserError(f"the MLflow UI did not start on port {args.port} (for {redact(uri)})")
        where = "the runs of experiment" if found else "MLflow (no run yet for"
        print(f"\n{where} {name!r}{'' if found else ')'}: {link}\n", flush=True)
        if _has_browser():
            webbrowser.open(link)
        return server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
