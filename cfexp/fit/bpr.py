"""BPR (Rendle et al. 2009): learn to rank each user's rated movies above the others, from sampled negatives.

Every training rating is a positive (implicit feedback: the user chose to watch it). Each positive (u, i) is
paired with a movie j drawn uniformly from those seen in training, and the loss is -log σ(x_ui − x_uj), plus
`row_l2` on the rows a batch uses. A negative that the user happens to have rated is kept (about 1.4% of them on
ml-latest-small), as in the paper's uniform sampler. The optimizer, schedule and callbacks are cfexp.fit.sgd's, so
tracking and pruning see BPR as any other trainer; it has no val MSE, so each epoch is judged on the ranking
metrics that the runner's ranking callback adds to the epoch's metrics.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cfexp.data.ratings import TensorPart
from cfexp.fit.common import BestEpoch, FitResult, Recipe, StopTraining, end_ranked_fit, notify, ranked_epoch_end
from cfexp.fit.sgd import make_optimizer, one_cycle
from cfexp.models.modules import EmbeddingBPR


def _epoch(model: EmbeddingBPR, optimizer, scheduler, users, positives, negatives, batch_size, row_l2) -> float:
    total = torch.zeros((), device=users.device)
    for start in range(0, len(users), batch_size):
        stop = start + batch_size
        u = model.u(users[start:stop])
        i, j = positives[start:stop], negatives[start:stop]
        mi, mj = model.m(i), model.m(j)
        margin = torch.linalg.vecdot(u, mi - mj) + (model.mb(i) - model.mb(j))[:, 0]
        loss = -F.logsigmoid(margin).mean()
        penalty = row_l2 * (u.square().sum() + mi.square().sum() + mj.square().sum()) / len(u) if row_l2 else 0.0
        optimizer.zero_grad(set_to_none=True)
        (loss + penalty).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach()
    return float(total) / math.ceil(len(users) / batch_size)


def fit(model: EmbeddingBPR, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Train `model` by BPR on `train`'s (user, movie) pairs; `val` has no MSE to give, so it is not scored here."""
    device = train.ratings.device
    model.to(device).train()
    n, bs = len(train), int(recipe.batch_size)
    seen = torch.unique(train.movies)  # negatives come from the movies seen in training (the ranking candidates)
    optimizer = make_optimizer(model, recipe)
    scheduler = one_cycle(optimizer, recipe, math.ceil(n / bs))
    generator = torch.Generator(device=device).manual_seed(recipe.seed)
    result = FitResult(status="completed")
    best = BestEpoch(keep_weights=recipe.restore_best, higher_is_better=True)
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        for epoch in range(recipe.epochs):
            epoch_started = time.perf_counter()
            lr = recipe.lr_at(epoch) if scheduler is None else optimizer.param_groups[0]["lr"]
            if scheduler is None:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            perm = torch.randperm(n, generator=generator, device=device)
            negatives = seen[torch.randint(len(seen), (n,), generator=generator, device=device)]
            users, positives = train.users.index_select(0, perm), train.movies.index_select(0, perm)
            train_loss = _epoch(model, optimizer, scheduler, users, positives, negatives, bs, recipe.row_l2)
            seconds = time.perf_counter() - epoch_started
            metrics = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": math.nan,
                "lr": lr,
                "seconds": seconds,
                "train_seconds": seconds,  # no val MSE to compute: the epoch is all training
            }
            if ranked_epoch_end(result, best, metrics, model, callbacks, recipe.patience):
                break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    return end_ranked_fit(result, best, model, callbacks, started)
