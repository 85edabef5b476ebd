"""`cfexp serve` (`make serve`): MLflow's model server for a registered model (default: the champion), on loopback."""

from __future__ import annotations

import argparse
import os
import sys

from cfexp.errors import UserError
from cfexp.serve.recommend import default_model
from cfexp.track.store import tracking_uri


def main(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be in 1..65535, got {args.port}")
    uri, provenance = (args.model, "") if args.model else default_model(args.experiment)
    # mlflow starts uvicorn from PATH: put this environment's bin folder first, as activating it would
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    fitted = f" ({provenance})" if provenance else ""
    print(f"serving {uri}{fitted} on http://127.0.0.1:{args.port}/invocations", flush=True)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    os.execve(sys.executable, command, {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": tracking_uri()})
    return 0  # not reached: the server replaces this process
