"""`make bench-scale`'s peers on the same 25M file, each in its own process: LensKit's biased ALS, Surprise's SVD and
implicit's ALS, with their own data loading, training and prediction (cfexp's own steps are in cfexp.bench.scale).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd

from cfexp.bench.scale import IALS_AT_SCALE, RANK, TIMED


def measure_implicit(path: str, device: str = "cpu") -> dict:
    """implicit's AlternatingLeastSquares for one iteration on the same positives and confidences (1 + α), the
    user × item matrix built from cfexp's encoding first (timed apart): the median of three fits of one iteration."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    from cfexp.data import ratings as data

    s = IALS_AT_SCALE
    ratings = data.load_ratings(path)
    frame = ratings.frame
    train = data.split_rows(len(frame)).train
    started = time.perf_counter()
    keep = train[frame.rating.to_numpy()[train] >= s["positives"]]
    users, movies = frame.user.to_numpy()[keep], frame.movie.to_numpy()[keep]
    confidence = np.full(len(keep), 1.0 + s["alpha"], np.float32)
    matrix = sp.csr_matrix((confidence, (users, movies)), shape=(ratings.n_users, ratings.n_movies))
    built = time.perf_counter()
    each = []
    for _ in range(TIMED):
        model = AlternatingLeastSquares(factors=s["n_factors"], regularization=s["reg"], alpha=1.0, iterations=1)
        model.cg_steps = s["cg_steps"]
        fitted = time.perf_counter()
        model.fit(matrix, show_progress=False)
        each.append(time.perf_counter() - fitted)
    return {
        "epoch_seconds": statistics.median(each),
        "epoch_seconds_each": each,
        "setup_seconds": built - started,
        "positives": len(keep),
    }


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    from cfexp.data import ratings as data

    split = data.split_rows(n)
    return split.train, split.val


def _frames(path: str) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    started = time.perf_counter()
    frame = pd.read_csv(path, usecols=["userId", "movieId", "rating"], engine="pyarrow")
    read = time.perf_counter() - started
    train_rows, val_rows = _split(len(frame))
    return frame.iloc[train_rows], frame.iloc[val_rows], read


def measure_lenskit(path: str, device: str = "cpu") -> dict:
    """LensKit's biased ALS: its dataset from the ratings frame, one ALS epoch, batch prediction of the val rows."""
    from lenskit import batch
    from lenskit.als import BiasedMFScorer
    from lenskit.data import ItemListCollection, from_interactions_df
    from lenskit.pipeline import predict_pipeline

    train_frame, val_frame, read = _frames(path)
    started = time.perf_counter()
    dataset = from_interactions_df(train_frame, user_col="userId", item_col="movieId", rating_col="rating")
    built = time.perf_counter()
    pipeline = predict_pipeline(BiasedMFScorer(embedding_size=RANK, epochs=1, regularization=0.1))
    pipeline.train(dataset)
    trained = time.perf_counter()
    queries = ItemListCollection.from_df(
        val_frame.rename(columns={"userId": "user_id", "movieId": "item_id"}), ["user_id"]
    )
    scored = batch.predict(pipeline, queries, n_jobs=1).to_df()
    done = time.perf_counter()
    truth = val_frame.rename(columns={"userId": "user_id", "movieId": "item_id"})
    joined = truth.merge(scored[["user_id", "item_id", "score"]], on=["user_id", "item_id"])
    return {
        "load_encode_seconds": read + built - started,
        "epoch_seconds": trained - built,
        "eval_seconds": done - trained,
        "val_mse": float(((joined["rating"] - joined["score"]) ** 2).mean()),
    }


def measure_surprise(path: str, device: str = "cpu") -> dict:
    """Surprise's SVD at the fast recipe's rank: its trainset from the frame, one SGD epoch, `test` on the val rows."""
    from surprise import SVD, Dataset, Reader

    from cfexp.bench.training import FAST_RUN

    train_frame, val_frame, read = _frames(path)
    started = time.perf_counter()
    trainset = Dataset.load_from_df(train_frame, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    built = time.perf_counter()
    model = SVD(n_factors=FAST_RUN["n_factors"], n_epochs=1, random_state=0).fit(trainset)
    trained = time.perf_counter()
    tests = list(val_frame.itertuples(index=False, name=None))
    predictions = model.test(tests)
    done = time.perf_counter()
    mse = float(np.mean([(p.r_ui - p.est) ** 2 for p in predictions]))
    return {
        "load_encode_seconds": read + built - started,
        "epoch_seconds": trained - built,
        "eval_seconds": done - trained,
        "val_mse": mse,
    }
