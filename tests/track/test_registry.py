"""Using what a sweep found: registered versions and the champion alias, cfexp recommend, the pyfunc's top-k, a
served model answering over HTTP, and the link `make ui` prints."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest

from cfexp.cli.main import main
from cfexp.data import ratings as data
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)

TINY = """
name = "tiny"

[data]
ratings = "{ratings}"

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[3, 0.5]]
row_l2 = 0.05
n_factors = 8
device = "cpu"

[sweep]
trials = 2

[sweep.space]
lr = {{ low = 0.1, high = 1.0, log = true }}
weight_decay = false

[[sweep.variants]]
name = "bias"
variant = "bias"

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"
"""


@pytest.fixture()
def swept(workdir, small_dir):
    path = workdir / "experiments" / "tiny.toml"
    path.write_text(TINY.format(ratings=small_dir))
    assert main(["sweep", str(path), "--quiet", "--summary", "summary.json"]) == 0
    mlflow.set_tracking_uri(default_uri())
    return path


def versions(client, name):
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def journal():
    backend = optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log")
    return optuna.storages.JournalStorage(backend)


def test_best_models_are_registered_once_per_improvement_and_the_best_is_champion(swept):
    client = mlflow.MlflowClient()
    summary = json.loads((swept.parents[1] / "summary.json").read_text())
    rows = {row["study"].split("/")[1]: row for row in summary["studies"]}
    for study in ("bias", "sig"):
        (version,) = versions(client, f"tiny.{study}")
        assert version.run_id == rows[study]["mlflow_run_id"]
        assert version.tags["cfexp.trial"] == str(
            optuna.load_study(study_name=f"tiny/{study}", storage=journal()).best_trial.number
        )
        assert float(version.tags["cfexp.val_mse"]) == pytest.approx(rows[study]["best_val_loss"])
        assert version.tags["cfexp.variant"] == {"bias": "bias", "sig": "dot_bias_sigmoid"}[study]
        assert version.tags["dataset.digest"] and version.tags["git.commit"]
        assert rows[study]["mlflow_run_id"] in version.description and "val MSE" in version.description
    champion = min(rows, key=lambda s: rows[s]["best_val_loss"])
    loser = ({"bias", "sig"} - {champion}).pop()
    assert client.get_registered_model(f"tiny.{champion}").aliases == {"champion": 1}
    assert not client.get_registered_model(f"tiny.{loser}").aliases

    # the same command again: every budget is met, nothing better is found, nothing new is registered
    assert main(["sweep", str(swept), "--quiet"]) == 0
    assert [len(versions(client, f"tiny.{s}")) for s in ("bias", "sig")] == [1, 1]
    # a bigger budget: a new version exactly when the study's best trial changed
    before = optuna.load_study(study_name="tiny/sig", storage=journal()).best_trial.number
    assert main(["sweep", str(swept), "--quiet", "--trials", "5"]) == 0
    after = optuna.load_study(study_name="tiny/sig", storage=journal()).best_trial
    assert len(versions(client, "tiny.sig")) == (1 if after.number == before else 2)
    assert versions(client, "tiny.sig")[-1].run_id == after.user_attrs["mlflow_run_id"]


def test_recommend_leaves_out_rated_movies_and_matches_the_models_scores(swept, small_dir, capsys):
    ratings = data.load_ratings(small_dir)
    user = int(ratings.frame.userId.iloc[0])
    assert main(["recommend", "--experiment", "tiny", "--user", str(user), "-k", "7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "@champion" in out[0]
    table = pd.DataFrame([line.split(None, 3) for line in out[2:]], columns=["rank", "movieId", "predicted", "title"])
    movies = table.movieId.astype(int).to_numpy()
    assert len(movies) == 7 and list(table["rank"].astype(int)) == list(range(1, 8))
    rated = set(ratings.frame.movieId[ratings.frame.userId == user])
    assert not rated & set(movies)

    uri = mlflow.MlflowClient().search_registered_models("name LIKE 'tiny.%'")
    champion = next(m.name for m in uri if "champion" in m.aliases)
    model = mlflow.pyfunc.load_model(f"models:/{champion}@champion")
    every = np.array(sorted(set(ratings.movie_ids) - rated))
    scores = model.predict(pd.DataFrame({"userId": user, "movieId": every}))
    best = every[np.argsort(-scores, kind="stable")[:7]]
    assert sorted(best) == sorted(movies)  # the model's own scores give the same top 7
    assert np.allclose(np.sort(-scores)[:7] * -1, table.predicted.astype(float), atol=1e-3)
    top = model.predict(pd.DataFrame({"userId": [user]}), params={"k": 7})
    assert list(top.movieId) == list(movies) and list(top.columns) == ["userId", "rank", "movieId", "title", "score"]


def test_recommend_for_an_unknown_user_says_so_in_one_line(swept, capsys):
    assert main(["recommend", "--experiment", "tiny", "--user", "999999"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such user 999999 in the training data" in err[0] and "use a known id" in err[0]
    assert main(["recommend", "--experiment", "nothing", "--user", "1"]) == 2
    assert "alias champion" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def test_the_champion_served_over_http_answers_ratings_and_top_k(swept, small_dir):
    ratings = data.load_ratings(small_dir)
    client = mlflow.MlflowClient()
    champion = next(m.name for m in client.search_registered_models("name LIKE 'tiny.%'") if "champion" in m.aliases)
    uri = f"models:/{champion}@champion"
    model = mlflow.pyfunc.load_model(uri)
    port = _free_port()
    # mlflow starts uvicorn from PATH: the environment's bin folder goes first, as `source .venv/bin/activate` does
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": default_uri(), "PATH": path}
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    server = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the model server did not start"
                time.sleep(0.5)
        pairs = ratings.frame[["userId", "movieId"]].head(4).astype(int)
        answer = _post(
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_split": {"columns": ["userId", "movieId"], "data": pairs.to_numpy().tolist()}},
        )
        assert np.allclose(answer["predictions"], model.predict(pairs), atol=1e-5)
        user = int(pairs.userId.iloc[0])
        answer = _post(
            f"http://127.0.0.1:{port}/invocations", {"dataframe_records": [{"userId": user}], "params": {"k": 5}}
        )
        served = pd.DataFrame(answer["predictions"])
        local = model.predict(pd.DataFrame({"userId": [user]}), params={"k": 5})
        assert list(served.movieId) == list(local.movieId) and np.allclose(served.score, local.score, atol=1e-5)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_ui_link_opens_the_runs_of_an_experiment_tagged_for_model_development(swept, capsys):
    experiment = mlflow.MlflowClient().get_experiment_by_name("tiny")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert main(["ui", str(swept), "--port", "5001", "--print-only"]) == 0
    link = capsys.readouterr().out.strip()
    assert link == f"http://127.0.0.1:5001/#/experiments/{experiment.experiment_id}?workflowType=machine_learning"
