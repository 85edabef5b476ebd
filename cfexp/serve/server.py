"""`cfexp serve` (`make serve`): MLflow's model server on loopback, for a model URI, or by default for both of an
experiment's champions behind one endpoint (cfexp.serve.champions): recommendations from the ranking champion,
ratings from the rating champion."""

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
    if args.model:
        uri = args.model
        print(f"serving {uri} on http://127.0.0.1:{args.port}/invocations", flush=True)
    else:
        uri = _champions(args.experiment, args.port)
    # mlflow starts uvicorn from PATH: put this environment's bin folder first, as activating it would
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    command += ["--host", "127.0.0.1", "--port", str(args.port)]
    os.execve(sys.executable, command, {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": tracking_uri()})
    return 0  # not reached: the server replaces this process


def _champions(experiment: str, port: int) -> str:
    """What serves the experiment's champions: the one model where one answers both, else both behind one pyfunc."""
    ranking, ranking_why = default_model(experiment, "ranking")
    rating, rating_why = default_model(experiment, "rating")
    where = f"http://127.0.0.1:{port}/invocations"
    print(f"serving on {where}: recommendations (params k > 0) from {ranking} ({ranking_why})", flush=True)
    print(f"ratings from {rating} ({rating_why})", flush=True)
    if ranking == rating:
        return rating
    from cfexp.serve.champions import saved

    return saved(ranking, rating)
