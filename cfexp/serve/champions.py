"""Both champions behind one MLflow endpoint: a request for recommendations (params `k` > 0) goes to the ranking
champion, a request for ratings to the rating champion. `cfexp serve` saves this small pyfunc, which names the two
by their aliases and loads them when the server starts, and serves it."""

from __future__ import annotations

import tempfile

import mlflow.pyfunc

from cfexp.serve.pyfunc import SIGNATURE, TEXT_SIGNATURE
from cfexp.serve.recommend import load_recommender


class Champions(mlflow.pyfunc.PythonModel):
    def __init__(self, ranking_uri: str, rating_uri: str):
        self.ranking_uri, self.rating_uri = ranking_uri, rating_uri
        self.ranking = self.rating = None

    def load_context(self, context) -> None:
        self.ranking, self.rating = load_recommender(self.ranking_uri), load_recommender(self.rating_uri)

    def predict(self, context, model_input, params: dict | None = None):
        if int((params or {}).get("k") or 0) > 0:
            found = self.ranking.predict(context, model_input, params)
            return found.assign(model=self.ranking_uri)  # which model answered
        return self.rating.predict(context, model_input, params)


def saved(ranking_uri: str, rating_uri: str) -> str:
    """The pyfunc saved to a folder of its own, for `mlflow models serve -m FOLDER`."""
    import torch

    signature = TEXT_SIGNATURE if load_recommender(ranking_uri).labels is not None else SIGNATURE
    folder = tempfile.mkdtemp(prefix="cfexp-serve-")
    mlflow.pyfunc.save_model(
        f"{folder}/champions",
        python_model=Champions(ranking_uri, rating_uri),
        signature=signature,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "pandas", "cfexp"],
    )
    return f"{folder}/champions"
