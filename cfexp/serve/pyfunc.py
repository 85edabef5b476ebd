"""The model cfexp logs and registers: an MLflow pyfunc that rates (userId, movieId) pairs, and recommends.

`predict(frame)` with userId and movieId columns returns one predicted rating per row (NaN for an id the model
does not know). `predict(frame, params={"k": 10})` with a userId column returns, for each user, the k movies the
model scores highest among those the user has not rated: userId, rank, movieId, title and score. The same two
calls work over HTTP once `mlflow models serve` serves it (docs/using-the-best-model.md).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from cfexp.serve.predictor import RatingPredictor, predictor_for

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", "userId"), ColSpec("long", "movieId", required=False)]),
    params=ParamSchema([ParamSpec("k", "long", 0)]),  # 0: rate the pairs; k > 0: each user's top k
)


class UnknownUser(ValueError):
    """A userId the model never saw in training: it has no factors to recommend from."""


class Recommender(mlflow.pyfunc.PythonModel):
    signature = SIGNATURE

    def __init__(self, predictor: RatingPredictor, titles: dict[int, str] | None = None):
        self.predictor = predictor
        self.titles = titles or {}

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        frame = _frame(model_input)
        k = int((params or {}).get("k") or 0)
        if k <= 0:
            if "movieId" not in frame:
                raise ValueError("rating needs a movieId column; for recommendations pass params k > 0")
            pairs = torch.as_tensor(frame[["userId", "movieId"]].to_numpy(dtype=np.float64), dtype=torch.float32)
            with torch.no_grad():
                return self.predictor(pairs).numpy()
        return pd.concat([self.top(int(user), k) for user in pd.unique(frame.userId)], ignore_index=True)

    def top(self, user_id: int, k: int) -> pd.DataFrame:
        """One user's top k, or UnknownUser."""
        try:
            movies, scores = self.predictor.recommend(user_id, k)
        except KeyError:
            raise UnknownUser(f"no such user {user_id} in the training data; use a userId it has") from None
        return pd.DataFrame(
            {
                "userId": user_id,
                "rank": np.arange(1, len(movies) + 1),
                "movieId": movies,
                "title": [self.titles.get(int(m), "") for m in movies],
                "score": scores,
            }
        )


def _frame(model_input) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    array = np.asarray(model_input)
    return pd.DataFrame(array.reshape(len(array), -1)[:, :2], columns=["userId", "movieId"][: array.shape[-1]])


def recommender_for(model: torch.nn.Module, ratings) -> Recommender:
    """A trained model as the pyfunc to log: on the CPU, for `ratings`' raw ids, with what each user rated and the
    movies' titles."""
    titles = {} if ratings.titles is None else {int(k): str(v) for k, v in ratings.titles.items()}
    return Recommender(predictor_for(model, ratings), titles)
