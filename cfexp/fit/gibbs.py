"""Fitting by Gibbs sampling: a Bayesian factorization machine over the model's feature groups; BPMF (Salakhutdinov &
Mnih 2008) and Bayesian SVD++ are two of its configurations.

Each "epoch" is one Gibbs sweep of the sampler (cfexp.fit.gibbs_sampler: Normal-Wishart hyperparameters for each
group, then every user's row from its Gaussian conditional in one batched Cholesky solve, the users' implicit part,
every movie's row, the movies' flipped part, and the time bins). After `burn_in` sweeps every `thin`-th draw is kept;
the prediction is the average of the kept draws' predictions. That average is itself a biased factorization over
the concatenated draws (scaled by 1/sqrt(draws)), which is what the fitted model holds, so the predictor, the model
logger and the report read it like any other. Time bins are quantiles of the train rows' timestamps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError
from cfexp.fit.common import FitResult, Recipe, StopTraining, notify
from cfexp.fit.gibbs_sampler import Sampler

NOISE_PRIOR = (1.0, 1.0)  # Gamma(shape, rate) prior on the noise precision when it is learned


class _Draws:
    """The kept draws (each a tuple of the user, movie and, with time, time-bin rows), and the running sum of their
    validation predictions."""

    def __init__(self, val_size: int, device: torch.device):
        self.rows: list[tuple[torch.Tensor, ...]] = []
        self.val_sum = torch.zeros(val_size, device=device)

    def __len__(self) -> int:
        return len(self.rows)

    def keep(self, rows: tuple[torch.Tensor, ...], val_prediction: torch.Tensor) -> None:
        self.rows.append(tuple(r.clone() for r in rows))
        self.val_sum += val_prediction

    def truncate(self, count: int) -> None:
        del self.rows[count:]


class _BestSweep:
    """The sweep with the lowest val loss so far, and what the model was then: its first `draws` kept draws, or
    (in the burn-in, before any was kept) that sweep's own draw."""

    def __init__(self):
        self.epoch: int | None = None
        self.loss = math.inf
        self.draws = 0
        self.rows: tuple[torch.Tensor, ...] | None = None

    def update(self, epoch: int, loss: float, draws: _Draws, rows: tuple[torch.Tensor, ...]) -> bool:
        """Record the sweep if it is the best so far; True when it was."""
        if not loss < self.loss:
            return False
        self.epoch, self.loss, self.draws = epoch, loss, len(draws)
        self.rows = None if len(draws) else tuple(r.clone() for r in rows)
        return True

    def restore(self, draws: _Draws) -> None:
        draws.truncate(self.draws)
        if self.rows is not None:
            draws.rows = [self.rows]


def _val_scores(prediction: torch.Tensor, val: TensorPart, y_range: tuple[float, float]) -> dict[str, float]:
    if not len(val):
        return {"val_loss": math.nan, "val_rmse": math.nan, "val_mae": math.nan}
    err = prediction.clamp(*y_range) - val.ratings
    mse = float(err.double().square().mean())
    return {"val_loss": mse, "val_rmse": math.sqrt(mse), "val_mae": float(err.double().abs().mean())}


def _posterior_mean_into(model, draws: list[tuple[torch.Tensor, ...]], offset: float) -> None:
    """Set the model's tables to the average of the draws: a dot product over the draws' factors, side by side."""
    scale = 1.0 / math.sqrt(len(draws))

    def averaged(group: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [draw[group] for draw in draws]
        factors = torch.cat([r[:, :-1] for r in rows], 1) * scale
        return factors, torch.stack([r[:, -1] for r in rows]).mean(0, keepdim=True).T

    time = averaged(2) if len(draws[0]) > 2 else None
    model.set_posterior(*averaged(0), *averaged(1), offset, time=time)


def _time_bins(model, train: TensorPart) -> tuple[torch.Tensor, int] | None:
    """Each train rating's time bin, and the number of bins, with the model's bin edges set to the quantiles of the
    train timestamps (None for a model without `time`)."""
    if not model.takes_times:
        return None
    if train.times is None:
        raise UserError("the time feature group needs timestamps, and these ratings have none")
    stamps = train.times.cpu().numpy().astype(np.float64)
    n_bins = len(model.time_edges) + 1
    edges = np.quantile(stamps, np.arange(1, n_bins) / n_bins) if len(stamps) else np.zeros(n_bins - 1)
    model.time_edges.copy_(torch.as_tensor(edges))
    return model.bins_of(train.times, len(train)), n_bins


def fit(model, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Sample the model's posterior for `recipe.epochs` sweeps, keeping draws after its burn-in."""
    device = train.ratings.device
    model.to(device)
    offset = float(train.ratings.mean())
    centred = train.ratings - offset
    with torch.no_grad():
        user_rows = torch.cat([model.u.weight, model.ub.weight], 1).float()
        movie_rows = torch.cat([model.m.weight, model.mb.weight], 1).float()
        user_rows[:, -1] = movie_rows[:, -1] = 0.0  # biases start at 0: a random start costs sweeps (measured)
    bins = _time_bins(model, train)
    sampler = Sampler(train, centred, user_rows, movie_rows, recipe.seed, model.features, bins)
    val_bins = model.bins_of(val.times, len(val)) if bins is not None else None
    rng = sampler.rng
    noise_precision = float(model.noise_precision)
    draws = _Draws(len(val), device)
    best = _BestSweep()
    result = FitResult(status="completed")
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    rows: tuple[torch.Tensor, ...] = (user_rows, movie_rows)
    try:
        with torch.no_grad():
            for epoch in range(recipe.epochs):
                epoch_started = time.perf_counter()
                _, _, sse = sampler.sweep(noise_precision)
                rows = sampler.rows()
                if model.learn_noise:
                    shape, rate = NOISE_PRIOR
                    noise_precision = float(rng.gamma(shape + len(train) / 2, 1.0 / (rate + sse / 2)))
                swept = time.perf_counter()
                prediction = sampler.predict(val.users, val.movies, val_bins)
                if epoch >= model.burn_in and (epoch - model.burn_in) % model.thin == 0:
                    draws.keep(rows, prediction)
                if len(draws):  # the model's prediction: the kept draws' average (else, in the burn-in, this draw)
                    prediction = draws.val_sum / len(draws)
                scores = _val_scores(prediction + offset, val, model.y_range)
                mse = scores["val_loss"]
                metrics = {
                    "epoch": epoch,
                    "train_loss": sse / len(train),
                    **scores,
                    "noise_precision": noise_precision,
                    "draws": len(draws),
                    "seconds": time.perf_counter() - epoch_started,
                    "train_seconds": swept - epoch_started,  # the sweep without scoring the validation set
                }
                result.history.append(metrics)
                if not math.isfinite(mse if len(val) else sse):  # a final fit has no validation
                    result.status, result.reason = "diverged", f"loss became {mse} at sweep {epoch}"
                notify(callbacks, "on_epoch_end", epoch, metrics)
                if result.status == "diverged":
                    break
                improved = best.update(epoch, mse, draws, rows)
                if not improved and recipe.patience and epoch - best.epoch >= recipe.patience:
                    result.reason = f"early stop at sweep {epoch}: no better val loss since sweep {best.epoch}"
                    break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    except FloatingPointError as exc:
        result.status, result.reason = "diverged", f"{exc} at sweep {len(result.history)}"
    result.best_epoch = best.epoch
    if recipe.restore_best and best.epoch is not None:
        best.restore(draws)
    if not len(draws):  # stopped in the burn-in: the model is the last draw
        draws.rows = [rows]
    _posterior_mean_into(model, draws.rows, offset)
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result
