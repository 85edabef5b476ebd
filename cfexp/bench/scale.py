"""`make bench-scale`'s own steps: cfexp on 25 million ratings (a synthetic file shaped like ml-25m), each
measurement in its own process. The peers on the same file are in cfexp.bench.scale_peers, the 25M sweep in
cfexp.bench.scale_sweep.

Every run reads the same CSV, splits it the lesson's way (20% validation, seed 42) and measures: loading and
encoding; an epoch of the fast SGD recipe at batch 65,536, one Gibbs sweep of bpmf at rank 20 and iALS epochs
(training only), each trainer's set-up, the evaluation pass over the validation set, and the full ranking beside
its torch.mm + topk floor.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

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


TIMED = 3  # epochs of iALS, and iterations of implicit's ALS, whose median is the figure
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
