"""`python -m cfexp.services start|stop|env` (`make services`): the services of a folder, started, stopped, or
their environment printed for the machines that sweep."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cfexp.errors import UserError
from cfexp.services.cluster import Services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfexp.services", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "env"))
    parser.add_argument("--dir", default=".services", help="where the cluster, logs and password live")
    parser.add_argument("--pg-port", type=int)
    parser.add_argument("--mlflow-port", type=int)
    parser.add_argument("--prefix", default="", help="env: a prefix for the variables' names")
    parser.add_argument("--only", choices=("postgres", "mlflow"), help="start or stop only this service")
    parser.add_argument("--host", help="start: the address the other machines reach this one at (default: loopback)")
    parser.add_argument("--auth", action="store_true", help="start: the tracking server asks for a user and password")
    args = parser.parse_args(argv)
    services = Services(Path(args.dir))
    try:
        if args.action == "start" and args.only:
            services.start_one(args.only)
        elif args.action == "stop" and args.only:
            services.stop_mlflow() if args.only == "mlflow" else services.stop_postgres()
        elif args.action == "start":
            services.start(args.pg_port, args.mlflow_port, args.host, args.auth)
            env, state = services.env(), services.state
            login = " (basic auth)" if state["auth"] else ""
            print(f"PostgreSQL on {state['host']}:{state['pg_port']}, MLflow on {env['MLFLOW_TRACKING_URI']}{login}")
            print(
                f'eval "$(python -m cfexp.services env --dir {args.dir})" sets MLFLOW_TRACKING_URI, CFEXP_STORAGE '
                'and PGPASSWORD; then: cfexp sweep EXPERIMENT --storage "$CFEXP_STORAGE"'
            )
        elif args.action == "stop":
            services.stop()
        else:
            for key, value in services.env().items():
                print(f"export {args.prefix}{key}={value}")
    except UserError as exc:
        print(f"cfexp.services: error: {exc}", file=sys.stderr)
        return 2
    return 0
