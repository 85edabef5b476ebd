"""Two machines, one sweep: a real PostgreSQL for the studies and a real `mlflow server` (proxied artifacts) for the
runs. The "machines" are two processes in separate folders that share nothing but the two URLs.

CI starts the services itself (.ci/run, `make services`) and names their folder in CFEXP_TEST_SERVICES_DIR; elsewhere
the tests start a throwaway pair (conftest's `services`), or are skipped where PostgreSQL is not installed."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

EXPERIMENT = """
name = "{name}"

[data]
ratings = "ml-latest-small"

[train]
optimizer = "sgd"
batch_size = 1024
schedule = [[6, 0.5]]
row_l2 = 0.05
n_factors = 8
device = "cpu"

[sweep]
trials = 3
pruner = "none"

[sweep.space]
n_factors = {{ low = 4, high = 16, log = true }}
lr = {{ low = 0.2, high = 0.8, log = true }}
weight_decay = false

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"

[[sweep.variants]]
name = "dot"
variant = "dot"
"""


@pytest.fixture(scope="module")
def shared(services):
    """(Optuna storage URL without a password, MLflow tracking URI, the database password)."""
    env = services.env()
    return env["CFEXP_STORAGE"], env["MLFLOW_TRACKING_URI"], env["PGPASSWORD"]


def machine(folder: Path, name: str, tracking: str, extra_env: dict, *args: str) -> subprocess.Popen:
    """A `cfexp sweep` in its own folder, as on another machine: only the URLs (and credentials) are shared."""
    (folder / "experiments").mkdir(parents=True)
    (folder / "experiments" / "shared.toml").write_text(EXPERIMENT.format(name=name))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFEXP_", "PG", "MLFLOW_"))}
    env |= {"MLFLOW_TRACKING_URI": tracking, **extra_env}
    command = [sys.executable, "-m", "cfexp.cli", "sweep", "experiments/shared.toml", "--summary", "summary.json"]
    return subprocess.Popen(
        [*command, *args], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_machines_join_one_sweep_through_postgresql_and_the_tracking_server(tmp_path, shared, monkeypatch):
    storage_url, tracking, password = shared
    name = f"shared-{uuid.uuid4().hex[:8]}"
    machines = [
        machine(tmp_path / host, name, tracking, {"PGPASSWORD": password}, "--storage", storage_url)
        for host in ("a", "b")
    ]
    for process in machines:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err

    monkeypatch.setenv("PGPASSWORD", password)
    storage = optuna.storages.RDBStorage(storage_url)
    owners = set()
    for study_name in (f"{name}/sig", f"{name}/dot"):
        study = optuna.load_study(study_name=study_name, storage=storage)
        assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3  # the budget once, not twice
        owners |= {t.user_attrs["cfexp.owner"]["pid"] for t in study.trials}
    assert owners <= {p.pid for p in machines}  # the machines' processes (both, unless one started late) ran it

    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("cfexp.role") == "study"]
    assert sorted(r.data.tags["optuna.study"] for r in parents) == [f"{name}/dot", f"{name}/sig"]
    assert len(runs) == 2 + 6 and {r.info.status for r in runs} == {"FINISHED"}
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert child.info.artifact_uri.startswith("mlflow-artifacts:")  # uploaded through the server
    mlflow.set_tracking_uri(tracking)
    history = mlflow.artifacts.load_text(f"{child.info.artifact_uri}/history.csv")
    assert history.startswith("epoch,") and len(history.splitlines()) == 7
    for host in ("a", "b"):  # no shared disk: nothing of the stores was written locally
        assert not (tmp_path / host / "mlruns").exists()
    # the registry is on the server too: each study's best as a version, the MSE-best as champion
    registered = {m.name: m for m in client.search_registered_models(f"name LIKE '{name}.%'")}
    assert set(registered) == {f"{name}.dot", f"{name}.sig"}
    assert sum("champion" in (m.aliases or {}) for m in registered.values()) == 1
    champion = next(m.name for m in registered.values() if "champion" in m.aliases)
    model = mlflow.pyfunc.load_model(f"models:/{champion}@champion")  # downloaded through the server
    assert len(model.predict(pd.DataFrame({"userId": [1]}), params={"k": 3})) == 3


def test_no_password_lands_in_params_tags_artifacts_summary_report_or_output(tmp_path, shared):
    storage_url, tracking, password = shared
    with_password = storage_url.replace("cfexp@", f"cfexp:{password}@")
    name = f"secret-{uuid.uuid4().hex[:8]}"
    process = machine(tmp_path / "a", name, tracking, {}, "--storage", with_password, "--set", "sweep.trials=1")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CFEXP_", "PG", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = tracking
    report = subprocess.run(
        [sys.executable, "-m", "cfexp.cli", "report", "experiments/shared.toml", "--storage", with_password],
        cwd=tmp_path / "a",
        env=env,
        capture_output=True,
        text=True,
    )
    assert report.returncode == 0, report.stderr
    wrong = subprocess.run(
        [
            sys.executable,
            "-m",
            "cfexp.cli",
            "sweep",
            "experiments/shared.toml",
            "--storage",
            storage_url.replace("cfexp@", "cfexp:not-the-password@"),
        ],
        cwd=tmp_path / "a",
        env=env,
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2 and "cfexp:***@" in wrong.stderr and "not-the-password" not in wrong.stderr

    seen = [out, err, report.stdout, report.stderr]
    seen += [p.read_text(errors="replace") for p in (tmp_path / "a").rglob("*") if p.is_file()]  # summary, report
    client = mlflow.MlflowClient(tracking)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=100)
    for run in runs:
        seen += [*run.data.params.values(), *run.data.tags.values()]
    download = tmp_path / "downloaded"
    for run in runs:
        mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, dst_path=str(download / run.info.run_id), tracking_uri=tracking
        )
    seen += [p.read_bytes().decode(errors="replace") for p in download.rglob("*") if p.is_file()]
    assert len(runs) >= 4 and any("report" in r.info.run_name for r in runs)
    assert not [text for text in seen if password in text]
