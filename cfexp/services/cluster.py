"""Shared stores for sweeps on several machines: a PostgreSQL cluster in a folder and an `mlflow server` on it.

    python -m cfexp.services start [--dir .services] [--pg-port N] [--mlflow-port N]   (make services)
    python -m cfexp.services env   [--dir .services]     the exports a sweep needs, for `eval`
    python -m cfexp.services stop  [--dir .services]     (make services-stop)
    python -m cfexp.services stop|start --only postgres|mlflow   one service (to restart it)

Both listen on loopback only. PostgreSQL comes from Debian's packages (apt-get install postgresql); it refuses to
run as root, so as root the cluster belongs to the `postgres` user. Its password is made at the first start and
kept in DIR/credentials (mode 600); the URLs carry no password: psycopg (libpq) reads PGPASSWORD from the
environment. The
MLflow server keeps runs in the `mlflow` database and serves artifacts itself (`--artifacts-destination`), so that
clients upload them through it and need no shared disk.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from glob import glob
from pathlib import Path

import requests

from cfexp.errors import UserError

USER = "cfexp"
DATABASES = ("optuna", "mlflow")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_bin() -> Path:
    """The PostgreSQL server binaries (the newest installed version)."""
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    initdb = found[-1] if found else shutil.which("initdb")
    if not initdb:
        raise UserError("PostgreSQL's server is not installed: apt-get install postgresql (Debian's packages)")
    return Path(initdb).parent


def _as_owner(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL command as the cluster's owner: the postgres user when we are root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


LOOPBACK = "127.0.0.1"
AUTH_USER = "cfexp"  # the tracking server's admin with --auth


class Services:
    """The services kept in one folder: their ports, password, processes and logs."""

    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.state_file = self.folder / "services.json"
        self.credentials = self.folder / "credentials"

    @property
    def state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def password(self) -> str:
        return self.credentials.read_text().strip()

    def env(self) -> dict[str, str]:
        """What a sweep on any machine needs: the two URLs (no password in them), PGPASSWORD, and with basic auth
        the tracking server's user and password."""
        state = self.state
        host = state.get("host", LOOPBACK)
        found = {
            "CFEXP_STORAGE": f"postgresql://{USER}@{host}:{state['pg_port']}/optuna",
            "MLFLOW_TRACKING_URI": f"http://{host}:{state['mlflow_port']}",
            "PGPASSWORD": self.password(),
        }
        if state.get("auth"):
            found |= {"MLFLOW_TRACKING_USERNAME": AUTH_USER, "MLFLOW_TRACKING_PASSWORD": self.password()}
        return found

    def start(
        self, pg_port: int | None = None, mlflow_port: int | None = None, host: str | None = None, auth: bool = False
    ) -> None:
        """Start both services; `host`: the address other machines reach them at (loopback only by default),
        `auth`: the tracking server asks for a user and password (MLflow's basic-auth app)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)  # the postgres user must reach its data folder
        if not self.credentials.exists():
            self.credentials.write_text(secrets.token_urlsafe(18) + "\n")
            self.credentials.chmod(0o600)
        state = {"pg_port": pg_port or self.state.get("pg_port") or free_port()}
        state["mlflow_port"] = mlflow_port or self.state.get("mlflow_port") or free_port()
        state["host"] = host or self.state.get("host") or LOOPBACK
        state["auth"] = bool(auth or self.state.get("auth"))
        self.state_file.write_text(json.dumps(state))
        self._start_postgres(state["pg_port"])
        self._start_mlflow(state["pg_port"], state["mlflow_port"])

    def _start_postgres(self, port: int) -> None:
        bin_dir, data = pg_bin(), self.folder / "postgres"
        if not (data / "PG_VERSION").exists():
            data.mkdir(exist_ok=True)
            pwfile = self.folder / "pwfile"
            pwfile.write_text(self.password() + "\n")
            if os.geteuid() == 0:
                shutil.chown(data, "postgres", "postgres")
                shutil.chown(pwfile, "postgres", "postgres")
            done = _as_owner(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            )
            pwfile.unlink()
            if done.returncode:
                raise UserError(f"initdb failed: {done.stderr.strip().splitlines()[-1]}")
        if _as_owner([str(bin_dir / "pg_ctl"), "-D", str(data), "status"]).returncode == 0:
            return
        host = self.state.get("host", LOOPBACK)
        if host != LOOPBACK:
            self._allow_same_network(data)
        listen = LOOPBACK if host == LOOPBACK else f"{LOOPBACK},{host}"
        options = f"-c listen_addresses={listen} -p {port} -k {data}"
        started = _as_owner(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(data / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        if started.returncode:
            raise UserError(f"PostgreSQL did not start; see {data / 'server.log'}")
        self._create_databases(port)

    @staticmethod
    def _allow_same_network(data: Path) -> None:
        """Let the machines on this host's own subnets in, with a password (scram-sha-256), and no one else."""
        hba = data / "pg_hba.conf"
        rule = "host all all samenet scram-sha-256  # cfexp.services --host"
        text = hba.read_text()
        if rule not in text:
            hba.write_text(text.rstrip("\n") + "\n" + rule + "\n")

    def _create_databases(self, port: int) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user=USER, password=self.password(), dbname="postgres", autocommit=True
        ) as connection:
            for name in DATABASES:
                if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                    connection.execute(f'CREATE DATABASE "{name}" OWNER {USER}')

    def _start_mlflow(self, pg_port: int, port: int) -> None:
        host = self.state.get("host", LOOPBACK)
        url = f"http://{host}:{port}"
        if _answers(url):
            return
        artifacts = self.folder / "artifacts"
        artifacts.mkdir(exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            host,
            "--port",
            str(port),
            "--allowed-hosts",
            f"{host}:{port},{LOOPBACK}:{port},localhost:{port}",
            "--workers",
            "2",
            "--backend-store-uri",
            f"postgresql://{USER}@127.0.0.1:{pg_port}/mlflow",
            "--artifacts-destination",
            str(artifacts),
        ]
        env = {**os.environ, "PGPASSWORD": self.password(), "MLFLOW_DISABLE_TELEMETRY": "true"}
        if self.state.get("auth"):
            command[4:4] = ["--app-name", "basic-auth"]
            env |= {
                "MLFLOW_AUTH_CONFIG_PATH": str(self._auth_config()),
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.password(),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self._secret("flask_secret"),  # the CSRF key its workers share
            }
        with (self.folder / "mlflow.log").open("ab") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        (self.folder / "mlflow.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 120
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise UserError(f"mlflow server did not start; see {self.folder / 'mlflow.log'}")
            time.sleep(0.5)

    def _secret(self, name: str) -> str:
        """A secret made once and kept in this folder (mode 600)."""
        path = self.folder / name
        if not path.exists():
            path.write_text(secrets.token_urlsafe(32) + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def _auth_config(self) -> Path:
        """MLflow's basic-auth settings: its users in a SQLite file here, the admin `cfexp` with this folder's
        password, and no access without a login (default permission NO_PERMISSIONS)."""
        config = self.folder / "basic_auth.ini"
        config.touch(mode=0o600)
        config.write_text(
            "[mlflow]\n"
            "default_permission = NO_PERMISSIONS\n"
            f"database_uri = sqlite:///{self.folder / 'basic_auth.db'}\n"
            f"admin_username = {AUTH_USER}\n"
            f"admin_password = {self.password()}\n"  # MLflow < 3.10 reads it only from here (this file is mode 600)
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        config.chmod(0o600)
        return config

    def stop(self) -> None:
        self.stop_mlflow()
        self.stop_postgres()

    def stop_mlflow(self) -> None:
        pid_file = self.folder / "mlflow.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.killpg(pid, signal.SIGTERM)  # the server and its workers
                for _ in range(100):
                    os.kill(pid, 0)
                    time.sleep(0.1)
            except ProcessLookupError:
                pass
            pid_file.unlink()

    def stop_postgres(self) -> None:
        data = self.folder / "postgres"
        if (data / "PG_VERSION").exists():
            _as_owner([str(pg_bin() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"])

    def start_one(self, which: str) -> None:
        """Start one service again (`postgres` or `mlflow`) on the ports it had."""
        state = self.state
        if which == "postgres":
            self._start_postgres(state["pg_port"])
        else:
            self._start_mlflow(state["pg_port"], state["mlflow_port"])


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False
