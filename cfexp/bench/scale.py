"""`make bench-scale`: cfexp on 25 million ratings (a synthetic file shaped like ml-25m), beside LensKit's biased
ALS, Surprise's SVD and implicit's ALS on the same file, each measurement in its own process.

Every run reads the same CSV, splits it the lesson's way (20% validation, seed 42) and measures: loading and
encoding; one epoch of the fast SGD recipe at batch 65,536 (training only; the evaluation pass is timed apart);
one Gibbs sweep of bpmf at rank 20; one iALS epoch; and the evaluation pass over the validation set. The peers:
LensKit 2025.8.1's BiasedMFScorer (ALS, rank 20, one epoch) with its own data loading and batch prediction,
Surprise's SVD for one epoch with its trainset and `test`, and implicit's ALS for one iteration at the iALS
epoch's settings.
"""

from __future__ import annotations

import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHAPE, SEED = "ml-25m", 42
RANK = 20
BATCH = 65_536
FAST_RUN_AT_SCALE = {"batch_size": BATCH, "schedule": [[1, 10.0]]}  # the fast recipe's lr scaled to the batch


def measure_synth(path: str, device: str = "cpu") -> dict:
    """Write the synthetic ml-25m-shaped file (streamed, chunk by chunk), unless a run already wrote it."""
    from cfexp.data import synth

    out, marker = Path(path), Path(path).with_suffix(".json")
    if out.exists() and marker.exists() and marker.read_text().strip() == f"{SHAPE} {SEED}":
        return {"reused": True, "mb": out.stat().st_size / 2**20}
    started = time.perf_counter()
    written = synth.write(SHAPE, out, SEED)
    marker.write_text(f"{SHAPE} {SEED}\n")
    return {"seconds": time.perf_counter() - started, "mb": out.stat().st_size / 2**20, **written}


def _split(n: int) -> tuple[np.ndarray, np.ndarray]:
    from cfexp.data import ratings as data

    split = data.split_rows(n)
    return split.train, split.val


def measure_load(path: str, device: str = "cpu") -> dict:
    """Load and encode (ids to contiguous indices, checks, digest), then split and move to tensors."""
    from cfexp.data import ratings as data
    from cfexp.variants import runner

    started = time.perf_counter()
    ratings = data.load_ratings(path)
    loaded = time.perf_counter()
    digest = ratings.digest
    split = data.split_rows(len(ratings.frame))
    runner.to_device(ratings, split, "cpu")
    return {
        "load_encode_seconds": loaded - started,
        "digest_split_tensors_seconds": time.perf_counter() - loaded,
        "ratings": len(ratings.frame),
        "users": ratings.n_users,
        "movies": ratings.n_movies,
        "digest": digest,
    }


class _SetUpDone(Exception):
    pass


class _SetUpClock:
    """A trainer callback: when the trainer starts its first epoch (its preparation is done)."""

    def __init__(self, stop: bool = False):
        self.at, self.stop = None, stop

    def on_fit_start(self, model, recipe) -> None:
        self.at = time.perf_counter()
        if self.stop:
            raise _SetUpDone


def ranking_floor(model, tensors) -> float:
    """The ranking pass's floor: the same blocks of users through a bare torch.mm of the model's factor tables and
    torch.topk, nothing else."""
    import torch

    from cfexp.metrics.ranking import score_block

    data = tensors.ranking
    with torch.inference_mode():
        users, movies = model.u.weight.detach(), model.m.weight.detach()[data.by_id]
        block = max(1, score_block(model, users.device) // len(data.by_id))
        started = time.perf_counter()
        for start in range(0, len(data.users), block):
            torch.topk(torch.mm(users[data.users[start : start + block]], movies.T), data.protocol.k, dim=1)
        if users.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started


def _fit_once(path: str, run: dict, device: str = "cpu") -> dict:
    """One fit as a trial runs it (its set-up, epochs and full ranking), the evaluation pass, the ranking's floor,
    and the set-up again on the same data, as the next trial of a study finds it."""
    from cfexp.config.experiment import resolve_run
    from cfexp.data import ratings as data
    from cfexp.fit import common as fitting
    from cfexp.metrics import ties
    from cfexp.variants import runner

    ties.warm()
    ratings = data.load_ratings(path)
    tensors = runner.to_device(ratings, data.split_rows(len(ratings.frame)), device)
    resolved = runner.resolved(resolve_run(run, "scale"), tensors)
    started = time.perf_counter()
    _ = tensors.ranking  # the split's ranking sets: built once per split, whatever the trainer
    ranking_sets = time.perf_counter() - started
    clock = _SetUpClock()
    started = time.perf_counter()
    model, result = runner.fit_run(resolved, tensors, [clock])
    setup = clock.at - started
    epochs = [h["train_seconds"] for h in result.history]
    started = time.perf_counter()
    scores = fitting.evaluate(model, tensors.val)
    evaluated = time.perf_counter() - started
    floor = ranking_floor(model, tensors)
    again = _SetUpClock(stop=True)
    started = time.perf_counter()
    with contextlib.suppress(_SetUpDone):
        runner.fit_run(resolved, tensors, [again])
    return {
        "epoch_seconds": statistics.median(epochs),  # of each epoch's training, where the run has several
        "epoch_seconds_each": epochs,
        "setup_seconds": setup,  # the first trial's: the model and the trainer's sparse layouts
        "ranking_sets_seconds": ranking_sets,
        "setup_again_seconds": again.at - started,  # the next trial's on the same data
        "eval_seconds": evaluated,
        "ranking_seconds": result.ranking_seconds,  # full ranking of the final model, every user × every movie
        "ranking_floor_seconds": floor,
        "ranked_users": result.ranking.get("ranked_users"),
        "ndcg_at_10": result.ranking.get("ndcg_at_10"),
        "val_rows": len(tensors.val),
        "val_mse": scores["mse"],
    }


def measure_sgd(path: str, device: str = "cpu") -> dict:
    """The fast recipe's epoch at batch 65,536. Its fused CPU loops are compiled (or loaded from numba's cache)
    first and timed apart: that happens once per process, and compiling once per machine."""
    from cfexp.bench.training import FAST_RUN
    from cfexp.fit import lazy_kernels

    started = time.perf_counter()
    lazy_kernels.warm()
    kernels = time.perf_counter() - started
    result = _fit_once(path, {**FAST_RUN, **FAST_RUN_AT_SCALE}, device)
    return {**result, "n_factors": FAST_RUN["n_factors"], "kernel_load_seconds": kernels}


def measure_gibbs(path: str, device: str = "cpu") -> dict:
    from cfexp.bench.training import BPMF_FAST_RUN

    run = {**BPMF_FAST_RUN, "n_factors": RANK, "epochs": 1, "options": {"noise_precision": 1.5, "burn_in": 0}}
    return {**_fit_once(path, run, device), "n_factors": RANK}


IALS_AT_SCALE = {"n_factors": 64, "reg": 0.01, "alpha": 1.0, "positives": 4.0, "cg_steps": 3}


def measure_ials(path: str, device: str = "cpu") -> dict:
    """An iALS epoch (every user's row, then every movie's, by 3 CG steps) at the floors part's settings: the median
    of three, as implicit's iteration is (one epoch of either takes seconds, and this machine's noise is as large).
    Its fused loops are loaded (or compiled) first and timed apart, as the SGD epoch's are."""
    from cfexp.fit import ials_kernels

    started = time.perf_counter()
    ials_kernels.warm()
    kernels = time.perf_counter() - started
    s = IALS_AT_SCALE
    options = {k: s[k] for k in ("reg", "alpha", "positives", "cg_steps")} | {"reg_exponent": 0.0}
    run = {"variant": "ials", "n_factors": s["n_factors"], "schedule": "constant", "epochs": TIMED, "lr": 1.0}
    return {**_fit_once(path, {**run, "options": options}, device), **s, "kernel_load_seconds": kernels}


TIMED = 3  # epochs of iALS, and iterations of implicit's ALS, whose median is the figure


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


SCALE_EXPERIMENT = Path("experiments", "ml-25m.toml").resolve()  # found from the repository's root, as make runs


def measure_sweep(path: str, device: str = "cpu") -> dict:
    """`cfexp sweep experiments/ml-25m.toml` on the file, as `make sweep` runs an experiment (two workers), in a
    fresh folder (fresh stores): its wall, each process's peak memory (sampled every half second; the largest
    exactly, from the kernel's count), and each study's best trial and test figures."""
    import psutil

    command = [
        sys.executable,
        "-m",
        "cfexp.cli",
        "sweep",
        str(SCALE_EXPERIMENT),
        "--ratings",
        str(Path(path).resolve()),
    ]
    command += ["--workers", "2", "--device", device, "--quiet", "--summary", "summary.json"]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peaks: dict[int, float] = {}
        while proc.poll() is None:
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                for p in tree:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.5)
        wall = time.perf_counter() - started
        error = proc.stderr.read()
        if proc.returncode:
            return {"error": (error.strip().splitlines() or ["failed"])[-1]}
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    keys = ("study", "variant", "objective", "best_value", "test_loss", "test_rmse", "test_ndcg_at_10", "params")
    return {
        "wall": wall,
        "largest_process_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "process_peaks_mb": sorted(peaks.values(), reverse=True),
        "final_seconds": summary.get("final_seconds"),
        "dataset": {k: summary["dataset"].get(k) for k in ("ratings", "users", "movies", "split")},
        "studies": [{k: row.get(k) for k in keys} | {"trials": row.get("complete")} for row in summary["studies"]],
    }


MEASURES = {
    "scale-synth": measure_synth,
    "scale-load": measure_load,
    "scale-sgd": measure_sgd,
    "scale-gibbs": measure_gibbs,
    "scale-lenskit": measure_lenskit,
    "scale-surprise": measure_surprise,
    "scale-ials": measure_ials,
    "scale-implicit": measure_implicit,
    "scale-sweep": measure_sweep,
}
# `make bench-gpu`: cfexp's own steps and the sweep with --device cuda (the peers are CPU-only)
GPU_MEASURES = {f"gpu-{name}": MEASURES[f"scale-{name}"] for name in ("sgd", "gibbs", "ials", "sweep")}
