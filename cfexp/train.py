"""The fit loop: index-tensor batching on the device, optimizers, LR phases or one-cycle, history, callbacks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cfexp.data import TensorPart
from cfexp.errors import UserError
from cfexp.lazy_sgd import LazySGD, dense_parameters, train_epoch

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
    ranking: dict[str, float] = field(default_factory=dict)  # the final model's ranking metrics (cfexp.ranking)
    ranking_seconds: float = 0.0  # what computing them took (every epoch's too, when ranked per epoch)

    @property
    def val_loss(self) -> float:
        return self.history[-1]["val_loss"] if self.history else math.nan

    @property
    def best_val_loss(self) -> float:
        losses = [h["val_loss"] for h in self.history if math.isfinite(h["val_loss"])]
        return min(losses) if losses else math.nan


class _BestEpoch:
    """The epoch with the lowest val loss so far, and (when asked) a copy of its weights."""

    def __init__(self, keep_weights: bool):
        self.keep_weights = keep_weights
        self.epoch: int | None = None
        self.loss = math.inf
        self.state: dict | None = None

    def update(self, epoch: int, loss: float, model: nn.Module) -> bool:
        """Record the epoch; True when it was not an improvement."""
        if loss < self.loss:
            self.epoch, self.loss = epoch, loss
            if self.keep_weights:
                self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        return True


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


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    lr = recipe.lr_at(0)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, foreach=True)
    cls = torch.optim.Adam if recipe.optimizer == "adam" else torch.optim.AdamW
    return cls(params, lr=lr, weight_decay=recipe.weight_decay, foreach=True)


def one_cycle(optimizer: torch.optim.Optimizer, recipe: Recipe, n_batches: int):
    """The one-cycle schedule stepped every batch, when the recipe asks for it (else None: the phases' lr)."""
    if not recipe.one_cycle:
        return None
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=recipe.lr_at(0), total_steps=recipe.epochs * n_batches)


@torch.inference_mode()
def evaluate(model: nn.Module, part: TensorPart) -> dict[str, float]:
    """MSE, RMSE and MAE over a whole split, in large chunks and without autograd."""
    was_training = model.training
    model.eval()
    sq = torch.zeros((), dtype=torch.float64, device=part.ratings.device)
    ab = torch.zeros_like(sq)
    for start in range(0, len(part), EVAL_CHUNK):
        stop = start + EVAL_CHUNK
        err = model(part.users[start:stop], part.movies[start:stop]) - part.ratings[start:stop]
        sq += err.double().square().sum()
        ab += err.double().abs().sum()
    model.train(was_training)
    mse, mae = (sq / len(part)).item(), (ab / len(part)).item()
    return {"mse": mse, "rmse": math.sqrt(mse) if mse >= 0 else math.nan, "mae": mae}


def uses_lazy_sgd(model: nn.Module, recipe: Recipe) -> bool:
    """Lazy SGD applies to plain SGD at a fixed lr per epoch, on variants made only of embeddings."""
    return (
        recipe.lazy_sgd
        and recipe.optimizer == "sgd"
        and not recipe.one_cycle
        and hasattr(model, "score_jacobian")
        and not dense_parameters(model)
    )


SMALL_STEP = 1 << 16  # state elements a lazy step touches, below which one CPU thread is faster


def _few_rows_per_step(lazy: LazySGD, batch_size: int, device: torch.device) -> bool:
    """Whether a step's ops are too small to split across CPU threads: the hand-off costs more than it saves
    (measured here: batch 64 about 15% faster on one thread of two; batch 1024 about 40% slower)."""
    return device.type == "cpu" and 2 * batch_size * lazy.state[0].numel() < SMALL_STEP


@contextmanager
def _threads(count: int | None):
    """Run with `count` intra-op CPU threads (None: as they are), then put the setting back."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _autograd_epoch(model, optimizer, scheduler, users, movies, ratings, batch_size, row_l2) -> torch.Tensor:
    total = torch.zeros((), device=ratings.device)
    user_side, movie_side = model.tables()
    for start in range(0, len(ratings), batch_size):
        stop = start + batch_size
        u = torch.cat([e(users[start:stop]) for e in user_side], 1)
        m = torch.cat([e(movies[start:stop]) for e in movie_side], 1)
        loss = F.mse_loss(model.score(u, m), ratings[start:stop])
        optimizer.zero_grad(set_to_none=True)
        if row_l2:
            (loss + row_l2 * (u.square().sum() + m.square().sum()) / len(u)).backward()
        else:
            loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach()
    return total


def fit(
    model: nn.Module,
    train: TensorPart,
    val: TensorPart,
    recipe: Recipe,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Train `model` in place on `train`, evaluating on `val` after every epoch; never raises on divergence."""
    device = train.ratings.device
    model.to(device).train()
    n, bs = len(train), int(recipe.batch_size)
    n_batches = math.ceil(n / bs)
    lazy = LazySGD(model, recipe.momentum, recipe.weight_decay) if uses_lazy_sgd(model, recipe) else None
    optimizer = None if lazy else make_optimizer(model, recipe)
    scheduler = one_cycle(optimizer, recipe, n_batches) if optimizer is not None else None
    shuffle = torch.Generator(device=device).manual_seed(recipe.seed)
    result = FitResult(status="completed")
    best = _BestEpoch(keep_weights=recipe.restore_best)
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        for epoch in range(recipe.epochs):
            epoch_started = time.perf_counter()
            lr = recipe.lr_at(epoch) if scheduler is None else optimizer.param_groups[0]["lr"]
            perm = torch.randperm(n, generator=shuffle, device=device)
            # index_select, not indexing: a third faster at 20M ratings (same result)
            users, movies, ratings = (t.index_select(0, perm) for t in (train.users, train.movies, train.ratings))
            if lazy is not None:
                lazy.start_epoch(lr, n_batches)
                with _threads(1 if _few_rows_per_step(lazy, bs, device) else None):
                    total = train_epoch(model, lazy, users, movies, ratings, bs, recipe.row_l2)
                lazy.flush()
            else:
                if scheduler is None:
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                total = _autograd_epoch(model, optimizer, scheduler, users, movies, ratings, bs, recipe.row_l2)
            train_loss = (total / n_batches).item()
            trained = time.perf_counter()
            scores = evaluate(model, val)
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": scores["mse"],
                "val_rmse": scores["rmse"],
                "val_mae": scores["mae"],
                "lr": lr,
                "seconds": time.perf_counter() - epoch_started,
                "train_seconds": trained - epoch_started,  # the epoch without its evaluation
            }
            result.history.append(metrics)
            if not (math.isfinite(train_loss) and math.isfinite(scores["mse"])):
                result.status = "diverged"
                result.reason = f"loss became {train_loss if not math.isfinite(train_loss) else scores['mse']}"
                result.reason += f" at epoch {epoch} (lr {lr:g})"
            notify(callbacks, "on_epoch_end", epoch, metrics)
            if result.status == "diverged":
                break
            if best.update(epoch, scores["mse"], model) and recipe.patience and epoch - best.epoch >= recipe.patience:
                result.reason = f"early stop at epoch {epoch}: no better val loss since epoch {best.epoch}"
                break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    result.best_epoch = best.epoch
    if recipe.restore_best and best.state is not None and result.status != "diverged":
        model.load_state_dict(best.state)
    result.seconds = time.perf_counter() - started
    notify(callbacks, "on_fit_end", result)
    return result
