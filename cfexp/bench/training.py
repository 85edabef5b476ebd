"""`make bench`'s training measurements: the lesson's loop against a plain DataLoader, and time to a good model
against Surprise."""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cfexp.config.experiment import RunConfig, load_experiment, resolve_run
from cfexp.data import ratings as data
from cfexp.fit import common as fitting
from cfexp.variants import runner

# The repository's experiments, found from where `make bench` runs: the repository's root.
SEED_EXPERIMENT = Path("experiments", "seed_reproduction.toml").resolve()
SWEEP_EXPERIMENT = Path("experiments", "variants.toml").resolve()
TARGET = 0.749
# The default sweep's best configuration (README), run as one training.
FAST_RUN = {
    "name": "fast",
    "variant": "dot_bias_sigmoid",
    "n_factors": 129,
    "init": "normal(0, 0.01)",
    "y_range": [0.0, 5.5],
    "optimizer": "sgd",
    "momentum": 0.9,
    "batch_size": 1024,
    "schedule": [[20, 0.831], [8, 0.0831]],
    "weight_decay": 0.0,
    "row_l2": 0.0605,
    "seed": 42,
    "device": "cpu",
}
# Bayesian MF (Gibbs), configured for time to target: a small rank mixes fastest. 25 sweeps at most.
BPMF_FAST_RUN = {
    "name": "bpmf-fast",
    "variant": "bpmf",
    "n_factors": 8,
    "init": "normal(0, 0.3)",
    "y_range": [0.5, 5.0],
    "schedule": "constant",
    "epochs": 25,
    "lr": 1.0,
    "options": {"noise_precision": 1.5, "burn_in": 2},
    "seed": 42,
}
SURPRISE = {"n_factors": 265, "n_epochs": 81, "lr_all": 0.00747, "reg_all": 0.0811}
FASTAI_STAND_IN = "fastai v2 collab_learner (50 factors, y_range (0, 5.5), fit_one_cycle(5, 5e-3, wd=0.1), batch 64)"


def seed_tensors(device: str = "cpu"):
    ratings = data.load_ratings()
    return ratings, runner.to_device(ratings, data.split_rows(len(ratings.frame)), device)


def dataloader_fit(model, part, val, run) -> tuple[list[float], float]:
    """The plain PyTorch way: a shuffled DataLoader over a TensorDataset, torch.optim.SGD, per-phase lr."""
    loader = DataLoader(TensorDataset(part.users, part.movies, part.ratings), batch_size=run.batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=run.lr, momentum=run.momentum, weight_decay=run.weight_decay)
    seconds = []
    for epochs, lr in run.phases:
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(epochs):
            started = time.perf_counter()
            for users, movies, ratings in loader:
                loss = F.mse_loss(model(users, movies), ratings)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            fitting.evaluate(model, val)
            seconds.append(time.perf_counter() - started)
    return seconds, fitting.evaluate(model, val)["mse"]


def measure_lesson(loop: str, device: str) -> dict:
    """a. The lesson's two runs at batch size 64, with cfexp's trainer or the DataLoader loop."""
    experiment = load_experiment(SEED_EXPERIMENT, [f"device='{device}'"])
    _, tensors = seed_tensors(device)
    out = {}
    for run in experiment.runs:
        run = runner.resolved(run, tensors)
        if loop == "cfexp":
            _, result = runner.fit_run(run, tensors)
            seconds, mse = [h["seconds"] for h in result.history], result.val_loss
        else:
            seconds, mse = dataloader_fit(runner.build_for(run, tensors), tensors.train, tensors.val, run)
        out[run.name] = {"s_per_epoch": statistics.median(seconds), "val_mse": mse}
    return out


class _Reached(fitting.Callback):
    def __init__(self, started: float, stop: bool = True):
        self.started, self.stop, self.seconds, self.epoch = started, stop, None, None

    def on_epoch_end(self, epoch, metrics):
        if self.seconds is None and metrics["val_loss"] <= TARGET:
            self.seconds, self.epoch = time.perf_counter() - self.started, epoch
            if self.stop:
                raise fitting.StopTraining("target reached")


def time_to_target(run: RunConfig, device: str, stop: bool = True) -> dict:
    """Seconds from loaded data until val MSE <= TARGET (then stop, unless asked to run on), and the best MSE."""
    _, tensors = seed_tensors(device)
    run = runner.resolved(replace(run, device=device), tensors)
    started = time.perf_counter()
    reached = _Reached(started, stop)
    _, result = runner.fit_run(run, tensors, [reached])
    return {
        "seconds": reached.seconds,
        "epoch": reached.epoch,
        "total_seconds": time.perf_counter() - started,
        "epochs_run": len(result.history),
        "best_val_mse": result.best_val_loss,
    }


def measure_fast(device: str) -> dict:
    """b. cfexp's fast SGD recipe (the default sweep's best SGD configuration)."""
    return time_to_target(resolve_run(dict(FAST_RUN), "bench"), device)


def sweep_study_point(name: str) -> RunConfig:
    """A study of the default sweep at the point it enqueues first, as one run."""
    from cfexp.search.space import with_params  # Optuna's: the scale suite's GPU steps need none of it

    spec = next(s for s in load_experiment(SWEEP_EXPERIMENT).sweep.studies if s.name == name)
    return with_params(spec.run, spec.enqueue[0])


def measure_bpmf(device: str) -> dict:
    """b. Bayesian MF by Gibbs sampling: the time-to-target configuration, and the sweep's study point in full."""
    fast = time_to_target(resolve_run(dict(BPMF_FAST_RUN), "bench"), device)
    return {"fast": fast, "study": time_to_target(sweep_study_point("bpmf"), device, stop=False)}


def measure_surprise(device: str) -> dict:
    """b. Surprise's SVD with the Optuna-tuned config: build the trainset, fit, predict the validation rows."""
    from surprise import SVD, Dataset, Reader

    ratings = data.load_ratings()
    frame = ratings.frame
    split = data.split_rows(len(frame))
    train_rows = frame.iloc[split.train][["userId", "movieId", "rating"]]
    val_rows = frame.iloc[split.val]
    started = time.perf_counter()
    trainset = Dataset.load_from_df(train_rows, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    model = SVD(random_state=0, **SURPRISE).fit(trainset)
    seconds = time.perf_counter() - started
    predictions = [model.predict(u, m).est for u, m in zip(val_rows.userId, val_rows.movieId, strict=True)]
    mse = float(((val_rows.rating.to_numpy() - predictions) ** 2).mean())
    return {"seconds": seconds, "val_mse": mse, "reached": mse <= TARGET}
