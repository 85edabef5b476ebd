"""The gradient trainer: index-tensor batching on the device, optimizers, LR phases or one-cycle, lazy SGD."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from cfexp.data.ratings import TensorPart
from cfexp.fit.common import BestEpoch, Callback, FitResult, Recipe, StopTraining, evaluate, notify
from cfexp.fit.lazy_epoch import train_epoch
from cfexp.fit.lazy_sgd import LazySGD, dense_parameters


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


PARALLEL_SHUFFLE_FROM = 1 << 20  # ratings from which the CPU shuffles in one fused pass (numba's import costs below)


def _shuffled(train: TensorPart, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training columns in the epoch's order (the same values whichever way they are gathered)."""
    columns = (train.users, train.movies, train.ratings)
    if perm.device.type != "cpu" or len(perm) < PARALLEL_SHUFFLE_FROM:
        # index_select, not indexing: a third faster at 20M ratings (same result)
        return tuple(t.index_select(0, perm) for t in columns)
    from cfexp.fit.lazy_kernels import shuffled

    out = tuple(torch.empty_like(t) for t in columns)
    shuffled(perm.numpy(), *(t.numpy() for t in columns), *(t.numpy() for t in out))
    return out


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
    best = BestEpoch(keep_weights=recipe.restore_best)
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        for epoch in range(recipe.epochs):
            epoch_started = time.perf_counter()
            lr = recipe.lr_at(epoch) if scheduler is None else optimizer.param_groups[0]["lr"]
            perm = torch.randperm(n, generator=shuffle, device=device)
            users, movies, ratings = _shuffled(train, perm)
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
            if not (math.isfinite(train_loss) and (math.isfinite(scores["mse"]) or not len(val))):
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
