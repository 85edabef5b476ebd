"""A champion for each job: the ranking champion (the highest validation NDCG among the studies tuned for it) answers
recommendations, the rating champion (the lowest validation MSE) ratings, in cfexp recommend, the notebook and one
served endpoint."""

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

import cfexp
from cfexp.cli.main import main
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps, stores and a model server: minutes (make test-fast leaves it out)

CHAMPS = """
name = "champs"

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[train]
device = "cpu"

[sweep]
trials = 2

[[sweep.variants]]
name = "bias"
variant = "bias"

[[sweep.variants]]
name = "popular"
variant = "popular"
objective = "ndcg@10"
trials = 1

[[sweep.variants]]
name = "ease"
variant = "ease"
objective = "ndcg@10"

[[sweep.variants]]
name = "itemknn"
variant = "itemknn"
objective = "ndcg@10"
"""


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_recommendations_come_from_the_ranking_champion_and_ratings_from_the_rating_champion(workdir, ratings, capsys):
    ratings.frame[ratings.frame.userId <= 200][["userId", "movieId", "rating"]].to_csv("r.csv", index=False)
    (workdir / "champs.toml").write_text(CHAMPS.format(ratings=workdir / "r.csv"))
    assert main(["sweep", "champs.toml", "--quiet"]) == 0
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log"))
    best = {name: optuna.load_study(study_name=f"champs/{name}", storage=storage).best_value for name in
            ("popular", "ease", "itemknn")}  # fmt: skip
    ranker = max(best, key=best.get)
    client = mlflow.MlflowClient(default_uri())
    aliases = {m.name: set(m.aliases) for m in client.search_registered_models("name LIKE 'champs.%'")}
    assert aliases[f"champs.{ranker}"] == {"ranking_champion"}  # chosen on validation NDCG, among the rankers
    assert aliases["champs.bias"] == {"champion"}  # the only rating study: the rating champion

    assert main(["recommend", "--experiment", "champs", "--user", "1", "-k", "3"]) == 0
    said = capsys.readouterr().out.splitlines()[0]
    assert f"models:/champs.{ranker}@ranking_champion" in said and "the ranking champion" in said
    assert type(cfexp.champion("champs").predictor.model).__name__ != "BiasModel"
    assert type(cfexp.champion("champs", job="rating").predictor.model).__name__ == "BiasModel"

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "cfexp.cli", "serve", "--experiment", "champs", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": default_uri()},
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stdout.read()
                time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/invocations"
        top = pd.DataFrame(_post(url, {"dataframe_records": [{"userId": 1}], "params": {"k": 3}})["predictions"])
        assert len(top) == 3 and set(top.model) == {f"models:/champs.{ranker}@ranking_champion"}
        pairs = [[1, 31], [1, 1029]]
        rated = _post(url, {"dataframe_split": {"columns": ["userId", "movieId"], "data": pairs}})["predictions"]
        local = cfexp.champion("champs", job="rating").predict_ratings(
            pd.DataFrame(pairs, columns=["userId", "movieId"])
        )
        assert np.allclose(rated, local, atol=1e-5)
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


VAES = """
name = "vaes"

[data]
ratings = "{ratings}"
test_pct = 0.2
val_pct = 0.1

[train]
device = "cpu"
schedule = "constant"
epochs = 2
lr = 0.001
batch_size = 100
n_factors = 16

[sweep]
trials = 1

[sweep.space]
n_factors = false
lr = false
weight_decay = false
dropout = false
positives = false

[[sweep.variants]]
name = "multvae"
variant = "multvae"
objective = "ndcg@10"
options = {{ hidden = 32 }}

[[sweep.variants]]
name = "recvae"
variant = "recvae"
objective = "ndcg@10"
options = {{ hidden = 32, encoder_passes = 1 }}
"""


def test_the_autoencoders_are_logged_registered_and_loaded_through_mlflow(workdir, ratings):
    ratings.frame[ratings.frame.userId <= 150][["userId", "movieId", "rating"]].to_csv("r.csv", index=False)
    (workdir / "vaes.toml").write_text(VAES.format(ratings=workdir / "r.csv"))
    assert main(["sweep", "vaes.toml", "--quiet"]) == 0
    client = mlflow.MlflowClient(default_uri())
    for study in ("multvae", "recvae"):
        model = mlflow.pyfunc.load_model(f"models:/vaes.{study}/1")  # MLflow's own loader, as a server uses it
        top = model.predict(pd.DataFrame({"userId": [1]}), params={"k": 5})
        assert len(top) == 5 and top.score.is_monotonic_decreasing
    ranked = [m for m in client.search_registered_models("name LIKE 'vaes.%'") if "ranking_champion" in m.aliases]
    assert len(ranked) == 1
