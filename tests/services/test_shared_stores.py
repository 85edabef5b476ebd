"""Every documented path on shared stores, as a second machine uses them: PostgreSQL for the studies and an
`mlflow server` with basic auth for the runs, both on this machine's network address (not loopback where it has
one), and nothing local in the folder the commands run in."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from cfexp.errors import UserError
from cfexp.services.cluster import Services, pg_bin

pytestmark = pytest.mark.e2e
EXPERIMENT = """
name = "shared"
[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1
[train]
schedule = [[2, 0.5]]
batch_size = 256
[sweep]
trials = 2
pruner = "none"
[eval]
folds = 2
[[sweep.variants]]
name = "bias"
variant = "bias"
[[sweep.variants]]
name = "dot_bias"
variant = "dot_bias"
"""


def network_address() -> str:
    """This machine's address on its network (what a second host would use), else loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: it only picks the outgoing interface
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    try:
        pg_bin()
    except UserError as exc:
        pytest.skip(str(exc))
    folder = Path(tempfile.mkdtemp(prefix="cfexp-test-shared-"))  # under /tmp: the postgres user must reach it
    services = Services(folder)
    try:
        services.start(host=network_address(), auth=True)
        yield services
    finally:
        services.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def second_host(shared, tmp_path_factory, small_dir):
    """A folder on 'the second machine': the experiment, and the services' environment, nothing else."""
    folder = tmp_path_factory.mktemp("second-host")
    (folder / "shared.toml").write_text(EXPERIMENT.format(ratings=small_dir / "ratings.csv"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CFEXP_", "PG"))}
    return folder, {**env, **shared.env()}


def cfexp(folder: Path, env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "cfexp.cli", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_services_listen_on_the_address_given_and_ask_for_a_login(shared):
    env = shared.env()
    url = env["MLFLOW_TRACKING_URI"]
    assert url.startswith(f"http://{network_address()}:")
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=10).status_code == 401
    login = (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])
    assert requests.get(search, auth=login, timeout=10).status_code == 200
    assert requests.get(search, auth=("cfexp", "wrong"), timeout=10).status_code == 401


def test_sweep_report_evaluate_recommend_ui_serve_and_dashboard_work_on_the_shared_stores(second_host):
    folder, env = second_host
    swept = cfexp(folder, env, "sweep", "shared.toml", "--quiet", "--summary", "summary.json")
    assert swept.returncode == 0, swept.stderr
    password = env["MLFLOW_TRACKING_PASSWORD"]

    report = cfexp(folder, env, "report", "shared.toml")
    assert report.returncode == 0, report.stderr
    assert (folder / "reports" / "shared" / "report.md").read_text().count("shared/") >= 2

    evaluated = cfexp(folder, env, "evaluate", "shared.toml", "--summary", "evaluation.json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert len(json.loads((folder / "evaluation.json").read_text())["folds"]) == 4  # 2 studies × 2 folds

    recommended = cfexp(folder, env, "recommend", "--experiment", "shared", "--user", "1", "-k", "3")
    assert recommended.returncode == 0, recommended.stderr
    assert "top 3 for user 1" in recommended.stdout

    ui = cfexp(folder, env, "ui", "shared.toml", "--print-only")
    assert ui.returncode == 0, ui.stderr
    link = ui.stdout.strip()
    assert link.startswith(env["MLFLOW_TRACKING_URI"] + "/#/experiments/") and "workflowType=machine_learning" in link
    assert requests.get(link.split("#")[0], timeout=10).status_code in (200, 401)  # the server's own UI

    assert not (folder / "mlruns").exists()  # nothing local: every store is the shared one
    for result in (swept, report, evaluated, recommended, ui):
        assert password not in result.stdout + result.stderr

    port = _free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "cfexp.cli", "serve", "--experiment", "shared", "--port", str(port)],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    dashboard = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("optuna-dashboard")),
            "--host",
            "127.0.0.1",
            "--port",
            str(port + 1),
            env["CFEXP_STORAGE"],
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        payload = {"dataframe_split": {"columns": ["userId", "movieId"], "data": [[1, 31], [1, 1029]]}}
        answer = _poll(lambda: requests.post(f"http://127.0.0.1:{port}/invocations", json=payload, timeout=5))
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["predictions"]) == 2
        studies = _poll(lambda: requests.get(f"http://127.0.0.1:{port + 1}/api/studies", timeout=5))
        assert {"shared/bias", "shared/dot_bias"} <= {s["study_name"] for s in studies.json()["study_summaries"]}
    finally:
        for process in (serve, dashboard):
            os.killpg(process.pid, signal.SIGKILL)  # throwaway servers: their whole process groups
            process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _poll(call, seconds: float = 180):
    """The first answer of `call` within `seconds` (a server that is still starting refuses connections)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
