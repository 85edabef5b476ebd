"""The model cfexp logs and registers: an MLflow pyfunc that rates (userId, movieId) pairs, and recommends.

`predict(frame)` with userId and movieId columns returns one predicted rating per row (NaN for an id the model
does not know); a time-aware model (bfm with `time`) takes each row's Unix time from an optional timestamp column,
and rates at its latest time without one. Ids are the data's own: integers, or the text an interaction file names
its users and items by (then the model keeps them as labels, and its signature takes strings).
`predict(frame, params={"k": 10})` with a userId column returns, for each user, the k movies the model scores highest
among those the user has not rated: userId, rank, movieId, title and score. The same two calls work over HTTP once
`mlflow models serve` serves it (docs/using-the-best-model.md).
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from cfexp.serve.predictor import RatingPredictor, predictor_for

PARAMS = ParamSchema([ParamSpec("k", "long", 0)])  # 0: rate the pairs; k > 0: each user's top k
TIME = ColSpec("long", "timestamp", required=False)  # Unix seconds: a time-aware model rates at each row's time
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", "userId"), ColSpec("long", "movieId", required=False), TIME]), params=PARAMS
)
TEXT_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "userId"), ColSpec("string", "movieId", required=False), TIME]), params=PARAMS
)


class UnknownUser(ValueError):
    """A userId the model never saw in training: it has no factors to recommend from."""


class Recommender(mlflow.pyfunc.PythonModel):
    signature = SIGNATURE
    labels = None  # the class's default, for the models logged before there were text ids

    def __init__(self, predictor: RatingPredictor, titles: dict[int, str] | None = None, labels=None):
        self.predictor = predictor
        self.titles = titles or {}
        # (user labels, movie labels) where the data name ids by text: the predictor's ids are their positions
        self.labels = labels
        if labels is not None:
            self.signature = TEXT_SIGNATURE

    def _codes(self, ids, side: int) -> np.ndarray:
        """The predictor's ids of the data's ids (-1 for a label it does not know)."""
        if self.labels is None:
            return np.asarray(ids, dtype=np.float64)
        return pd.Index(self.labels[side]).get_indexer(pd.Series(ids).astype(str)).astype(np.float64)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        frame = _frame(model_input)
        k = int((params or {}).get("k") or 0)
        if k <= 0:
            if "movieId" not in frame:
                raise ValueError("rating needs a movieId column; for recommendations pass params k > 0")
            columns = [self._codes(frame.userId, 0), self._codes(frame.movieId, 1)]
            if "timestamp" in frame:
                columns.append(frame.timestamp.to_numpy(np.float64))
            pairs = np.stack(columns, axis=1)
            with torch.no_grad():
                return self.predictor(torch.as_tensor(pairs, dtype=torch.float64)).numpy()
        return pd.concat([self.top(user, k) for user in pd.unique(frame.userId)], ignore_index=True)

    def predict_ratings(self, pairs: pd.DataFrame) -> np.ndarray:
        """The ratings of a frame of userId and movieId, and optionally timestamp (NaN for an id it does not know)."""
        return self.predict(None, pairs)

    def top(self, user_id, k: int) -> pd.DataFrame:
        """One user's top k, or UnknownUser."""
        code = self._codes([user_id], 0)[0] if self.labels is not None else _integer(user_id)
        try:
            if code is None or code < 0:
                raise KeyError(user_id)
            movies, scores = self.predictor.recommend(int(code), k)
        except KeyError:
            raise UnknownUser(f"no such user {user_id} in the training data; use a userId it has") from None
        if self.labels is not None:
            user_id, movies = self.labels[0][int(code)], self.labels[1][movies]
        return pd.DataFrame(
            {
                "userId": user_id,
                "rank": np.arange(1, len(movies) + 1),
                "movieId": movies,
                "title": [self.titles.get(m, "") for m in movies],
                "score": scores,
            }
        )

    def known_users(self) -> list:
        """A few of the users it knows (for a message), as the data name them."""
        if self.labels is not None:
            return list(self.labels[0][:3])
        ids = self.predictor.user_ids
        return [int(ids.min()), int(ids.max())]


def _integer(user_id) -> int | None:
    try:
        return int(user_id)
    except (TypeError, ValueError):
        return None


def _frame(model_input) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input
    array = np.asarray(model_input)
    return pd.DataFrame(array.reshape(len(array), -1)[:, :2], columns=["userId", "movieId"][: array.shape[-1]])


def recommender_for(model: torch.nn.Module, ratings) -> Recommender:
    """A trained model as the pyfunc to log: on the CPU, for `ratings`' raw ids, with what each user rated and the
    movies' titles."""
    titles = {} if ratings.titles is None else {int(k): str(v) for k, v in ratings.titles.items()}
    if ratings.user_ids.dtype == object or ratings.movie_ids.dtype == object:
        labels = (ratings.user_ids.astype(str), ratings.movie_ids.astype(str))
        return Recommender(predictor_for(model, ratings, by_position=True), titles, labels)
    return Recommender(predictor_for(model, ratings), titles)
