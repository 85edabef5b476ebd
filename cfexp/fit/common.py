"""What every trainer shares (train.fit, gibbs, baselines, bpr): the Recipe it is given, the callbacks it calls,
the FitResult it returns, the best epoch it keeps, the device it runs on, and the val scores of a model."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError

OPTIMIZERS = ("sgd", "adam", "adamw")
EVAL_CHUNK = 1 << 14  # 16k rows: larger chunks page-fault their fresh tensors in, and ran 5x slower at 25M


@dataclass(frozen=True)
class Recipe:
    """How to train: optimizer, LR schedule and batching. `phases` is a list of (epochs, lr)."""

    optimizer: str = "sgd"
    phases: tuple[tuple[int, float], ...] = ((3, 0.1), (3, 0.01))
    one_cycle: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 42
    device: str = "auto"
    lazy_sgd: bool = True  # SGD on embedding rows via lazy_sgd when the variant allows (same math, faster)
    row_l2: float = 0.0  # L2 on the embedding rows a batch uses, per use (frequency-weighted, as in Funk SVD)
    restore_best: bool = False  # end with the weights of the epoch with the lowest val loss
    patience: int = 0  # stop after this many epochs without a new best val loss (0: never)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if not self.phases or any(int(e) != e or e < 1 or not lr > 0 for e, lr in self.phases):
            raise UserError(f"each schedule phase needs epochs >= 1 and lr > 0, got {list(self.phases)}")
        if self.one_cycle and len(self.phases) != 1:
            raise UserError("one_cycle takes a single (epochs, peak lr)")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0:
            raise UserError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if int(self.patience) != self.patience or self.patience < 0:
            raise UserError(f"patience must be an integer >= 0, got {self.patience}")
        if not self.row_l2 >= 0:
            raise UserError(f"row_l2 must be >= 0, got {self.row_l2}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise UserError(f"batch_size must be a positive integer, got {self.batch_size}")

    @property
    def epochs(self) -> int:
        return sum(int(e) for e, _ in self.phases)

    def lr_at(self, epoch: int) -> float:
        """The phase LR for a 0-based epoch (the peak LR under one-cycle)."""
        for epochs, lr in self.phases:
            if epoch < epochs:
                return lr
            epoch -= epochs
        return self.phases[-1][1]


class StopTraining(Exception):
    """Raised by a callback to end a fit early but cleanly (status "stopped")."""


class Callback:
    """Hooks the trainer calls. Any object with some of these methods will do (they are looked up by name), so
    trackers need not import this module. Exceptions other than StopTraining propagate."""

    def on_fit_start(self, model: nn.Module, recipe: Recipe) -> None: ...

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def on_fit_end(self, result: FitResult) -> None: ...


@dataclass
class FitResult:
    status: str  # "completed" | "diverged" | "stopped"
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    reason: str = ""
    test_loss: float | None = None
    best_epoch: int | None = None
    ranking: dict[str, float] = field(default_factory=dict)  # the final model's ranking metrics (cfexp.metrics.ranking)
    ranking_seconds: float = 0.0  # what computing them took (every epoch's too, when ranked per epoch)

    @property
    def val_loss(self) -> float:
        return self.history[-1]["val_loss"] if self.history else math.nan

    @property
    def best_val_loss(self) -> float:
        losses = [h["val_loss"] for h in self.history if math.isfinite(h["val_loss"])]
        return min(losses) if losses else math.nan


class BestEpoch:
    """The epoch with the best value so far (the lowest, or the highest when `higher_is_better`), and (when asked)
    a copy of its weights."""

    def __init__(self, keep_weights: bool, higher_is_better: bool = False):
        self.keep_weights = keep_weights
        self.sign = -1.0 if higher_is_better else 1.0
        self.epoch: int | None = None
        self.value = math.inf  # times sign: lower is better here
        self.state: dict | None = None

    def update(self, epoch: int, value: float, model: nn.Module) -> bool:
        """Record the epoch; True when it was not an improvement."""
        if self.sign * value < self.value:
            self.epoch, self.value = epoch, self.sign * value
            if self.keep_weights:
                self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        return True


def one_epoch_fit(result: FitResult, metrics: dict, callbacks: Sequence, started: float) -> FitResult:
    """End a closed-form fit reported as one epoch: record it, tell the callbacks (which may stop it), finish."""
    result.history.append(metrics)
    result.best_epoch = 0
    try:
        notify(callbacks, "on_epoch_end", 0, metrics)
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result


RANKED_BY = "ndcg_at_"  # the ranking metric (at the protocol's k) that picks a ranking model's best epoch


def ranked_epoch_end(result: FitResult, best: BestEpoch, metrics: dict, model: nn.Module, callbacks, patience) -> bool:
    """Record a ranking model's epoch and tell the callbacks (the runner's ranking callback adds ndcg_at_k to the
    metrics); True when training ends here: diverged, or no better NDCG for `patience` epochs."""
    epoch, train_loss = metrics["epoch"], metrics["train_loss"]
    result.history.append(metrics)
    if not math.isfinite(train_loss):
        result.status, result.reason = "diverged", f"loss became {train_loss} at epoch {epoch}"
    notify(callbacks, "on_epoch_end", epoch, metrics)
    if result.status == "diverged":
        return True
    score = next((v for k, v in metrics.items() if k.startswith(RANKED_BY)), -math.inf)
    if best.update(epoch, score, model) and patience and epoch - best.epoch >= patience:
        result.reason = f"early stop at epoch {epoch}: no better NDCG since epoch {best.epoch}"
        return True
    return False


def end_ranked_fit(result: FitResult, best: BestEpoch, model: nn.Module, callbacks, started: float) -> FitResult:
    """Finish a ranking model's fit with its best epoch's weights (where kept and it did not diverge)."""
    result.best_epoch = best.epoch
    if best.state is not None and result.status != "diverged":
        model.load_state_dict(best.state)
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result


def notify(callbacks: Sequence, hook: str, *args) -> None:
    for cb in callbacks:
        method = getattr(cb, hook, None)
        if method is not None:
            method(*args)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"bad device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(f"device {name!r} asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    elif device.type != "cpu":
        raise UserError(f"bad device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


@torch.inference_mode()
def evaluate(model: nn.Module, part: TensorPart) -> dict[str, float]:
    """MSE, RMSE and MAE over a whole split, in large chunks and without autograd (NaN for an empty part: a final
    fit has no validation)."""
    if len(part) == 0:
        return {"mse": math.nan, "rmse": math.nan, "mae": math.nan}
    was_training = model.training
    model.eval()
    sq = torch.zeros((), dtype=torch.float64, device=part.ratings.device)
    ab = torch.zeros_like(sq)
    for start in range(0, len(part), EVAL_CHUNK):
        stop = start + EVAL_CHUNK
        rows = (part.users[start:stop], part.movies[start:stop])
        if getattr(model, "takes_times", False) and part.times is not None:  # a time-aware model: each row's time
            rows += (part.times[start:stop],)
        err = model(*rows) - part.ratings[start:stop]
        sq += err.double().square().sum()
        ab += err.double().abs().sum()
    model.train(was_training)
    mse, mae = (sq / len(part)).item(), (ab / len(part)).item()
    return {"mse": mse, "rmse": math.sqrt(mse) if mse >= 0 else math.nan, "mae": mae}
