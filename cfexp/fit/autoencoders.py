"""Training the variational autoencoders (cfexp.models.autoencoders) on users' training positives.

An epoch passes over the users with a positive, in seeded random batches of `batch_size` users; the loss is the
negative multinomial log-likelihood of each user's movies plus a weighted KL term:

- Mult-VAE: KL(q(z|x) ‖ N(0, I)) weighted by β, annealed linearly from 0 to `beta` over `anneal_epochs` epochs
  (Liang et al.'s annealing, counted in epochs rather than updates); the encoder and decoder learn together.
- RecVAE: the KL to its composite prior (a mixture, weights 3/20, 3/4 and 1/10, of N(0, I), the posterior of the
  encoder as it was after the last epoch's encoder passes, and N(0, e¹⁰ I)), estimated from the sampled z and
  weighted by `gamma` × the user's count of positives; each epoch is `encoder_passes` passes updating the encoder
  (with input dropout), the old encoder copied, then one pass updating the decoder (without dropout), each with
  its own Adam, as its authors train it.

Each epoch is ranked by the runner's ranking callback (fold-in of the users' training positives); with
`restore_best` the fit ends on the epoch with the best NDCG, and `patience` stops it early.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cfexp.data.implicit import Positives
from cfexp.data.ratings import TensorPart
from cfexp.fit.common import BestEpoch, FitResult, Recipe, StopTraining, end_ranked_fit, notify, ranked_epoch_end
from cfexp.models.autoencoders import AutoEncoder, MultVAE, RecVAE

MIXTURE = (3 / 20, 3 / 4, 1 / 10)  # RecVAE's composite prior: standard, the old posterior, a wide one
WIDE_LOG_VAR = 10.0


def _log_normal(z: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    return -0.5 * (log_var + math.log(2 * math.pi) + (z - mean).pow(2) / log_var.exp())


def _sample(mean: torch.Tensor, log_var: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(mean.shape, generator=generator, device=mean.device)
    return mean + noise * (0.5 * log_var).exp()


def _likelihood(model: AutoEncoder, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Each user's multinomial log-likelihood of their movies."""
    return (F.log_softmax(model.decode(z), dim=1) * x).sum(1)


def _multvae_loss(model: MultVAE, x: torch.Tensor, beta: float, generator: torch.Generator) -> torch.Tensor:
    mean, log_var = model.encode(x)
    z = _sample(mean, log_var, generator)
    kl = 0.5 * (log_var.exp() + mean.pow(2) - 1.0 - log_var).sum(1)
    return (-_likelihood(model, x, z) + beta * kl).mean()


def _recvae_loss(model: RecVAE, x: torch.Tensor, gamma: float, generator: torch.Generator) -> torch.Tensor:
    mean, log_var = model.encode(x)
    z = _sample(mean, log_var, generator)
    old_mean, old_log_var = model.old_encoder(x, 0.0)
    zero = torch.zeros_like(mean)
    priors = torch.stack(
        [
            _log_normal(z, zero, zero) + math.log(MIXTURE[0]),
            _log_normal(z, old_mean, old_log_var) + math.log(MIXTURE[1]),
            _log_normal(z, zero, zero + WIDE_LOG_VAR) + math.log(MIXTURE[2]),
        ],
        dim=-1,
    )
    kl = (_log_normal(z, mean, log_var) - torch.logsumexp(priors, dim=-1)).sum(1) * (gamma * x.sum(1))
    return (-_likelihood(model, x, z) + kl).mean()


def _pass(model, users, batch_size, loss_of, optimizers, generator) -> float:
    """One pass over the users in a seeded order; the mean of the batches' losses."""
    order = users[torch.randperm(len(users), generator=generator, device=users.device)]
    total, batches = 0.0, 0
    for start in range(0, len(order), batch_size):
        loss = loss_of(model.histories.block(order[start : start + batch_size]))
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for optimizer in optimizers:
            optimizer.step()
        total, batches = total + float(loss.detach()), batches + 1
    return total / max(batches, 1)


def _adam(parameters, recipe: Recipe, lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(parameters, lr=lr, weight_decay=recipe.weight_decay)


def fit(model: AutoEncoder, train: TensorPart, val: TensorPart, recipe: Recipe, callbacks: Sequence = ()) -> FitResult:
    """Train the VAE on `train`'s positives; each epoch judged on the ranking the runner's callback adds."""
    device = train.ratings.device
    model.to(device).train()
    positives = Positives.of(train, model.positives)
    model.histories.set(positives.users, positives.movies)
    users = torch.nonzero(model.histories.counts() > 0).flatten()
    generator = torch.Generator(device=device).manual_seed(recipe.seed)
    rec = isinstance(model, RecVAE)
    if rec:
        encoder_opt = _adam(model.encoder.parameters(), recipe, recipe.lr_at(0))
        decoder_opt = _adam(model.decoder.parameters(), recipe, recipe.lr_at(0))
    else:
        optimizer = _adam(model.parameters(), recipe, recipe.lr_at(0))
    result = FitResult(status="completed")
    best = BestEpoch(keep_weights=recipe.restore_best, higher_is_better=True)
    notify(callbacks, "on_fit_start", model, recipe)
    started = time.perf_counter()
    try:
        for epoch in range(recipe.epochs):
            epoch_started = time.perf_counter()
            lr = recipe.lr_at(epoch)
            for opt in (encoder_opt, decoder_opt) if rec else (optimizer,):
                for group in opt.param_groups:
                    group["lr"] = lr
            model.train()
            if rec:
                loss_of = lambda x: _recvae_loss(model, x, model.gamma, generator)  # noqa: E731
                for _ in range(model.encoder_passes):
                    train_loss = _pass(model, users, recipe.batch_size, loss_of, [encoder_opt], generator)
                model.old_encoder.load_state_dict(model.encoder.state_dict())
                dropout, model.dropout = model.dropout, 0.0
                train_loss = _pass(model, users, recipe.batch_size, loss_of, [decoder_opt], generator)
                model.dropout = dropout
            else:
                beta = model.beta * min(1.0, (epoch + 1) / max(model.anneal_epochs, 1))
                loss_of = lambda x, beta=beta: _multvae_loss(model, x, beta, generator)  # noqa: E731
                train_loss = _pass(model, users, recipe.batch_size, loss_of, [optimizer], generator)
            model.eval()
            seconds = time.perf_counter() - epoch_started
            metrics = {"epoch": epoch, "train_loss": train_loss, "val_loss": math.nan, "lr": lr}
            metrics.update({"seconds": seconds, "train_seconds": seconds})
            if ranked_epoch_end(result, best, metrics, model, callbacks, recipe.patience):
                break
    except StopTraining as stop:
        result.status, result.reason = "stopped", str(stop)
    model.eval()
    return end_ranked_fit(result, best, model, callbacks, started)
