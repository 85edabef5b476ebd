"""The variational autoencoders that rank: Mult-VAE (Liang et al. 2018) and RecVAE (Shenbin et al. 2020). Both
train with Adam at the run's lr and weight decay, on batches of `batch_size` users, each epoch ranked; n_factors is
the size of the latent vector."""

from __future__ import annotations

import math

from cfexp.errors import UserError
from cfexp.fit import autoencoders
from cfexp.models.autoencoders import MultVAE, RecVAE
from cfexp.variants.registry import Param, Trainer, register

AUTOENCODER = Trainer(
    "autoencoder",
    autoencoders.fit,
    ignores=frozenset({"row_l2", "momentum"}),
    unused=frozenset({"optimizer", "lazy_sgd", "y_range", "init", "one_cycle"}),
    settings=lambda params, options: f"Adam, {params.get('epochs')} epochs of {params.get('batch_size')}-user batches",
)
POSITIVES = Param("categorical", choices=(0.0, 4.0), threshold=True)


def _check(hidden, dropout, positives, **weights) -> None:
    if not isinstance(hidden, int) or isinstance(hidden, bool) or hidden < 1:
        raise UserError(f"hidden must be an integer >= 1, got {hidden!r}")
    if not (isinstance(dropout, int | float) and 0 <= dropout < 1):
        raise UserError(f"dropout must be in [0, 1), got {dropout!r}")
    if not (isinstance(positives, int | float) and positives >= 0):
        raise UserError(f"positives must be a rating threshold >= 0 (0: every rating), got {positives!r}")
    for key, value in weights.items():
        if not (isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < math.inf):
            raise UserError(f"{key} must be a number >= 0, got {value!r}")


@register(
    "multvae",
    init="constant(0)",
    trainer=AUTOENCODER,
    uses_y_range=False,
    epoch_cost=2.0,
    rates=False,
    space={
        "n_factors": Param("int", 32, 256, log=True),
        "lr": Param("float", 1e-4, 1e-2, log=True),
        "beta": Param("float", 0.05, 1.0, log=True),
        "dropout": Param("float", 0.2, 0.7),
        "positives": POSITIVES,
    },
    check=lambda hidden, dropout, positives, beta, anneal_epochs: _check(
        hidden, dropout, positives, beta=beta, anneal_epochs=anneal_epochs
    ),
)
def _multvae(n_users, n_movies, n_factors, y_range, sparse, *, hidden=600, dropout=0.5, positives=0.0, beta=0.2,
             anneal_epochs=20):  # fmt: skip
    """Mult-VAE (Liang et al. 2018): a variational autoencoder of a user's movies, multinomial likelihood; ranks."""
    return MultVAE(n_users, n_movies, n_factors, hidden, dropout, positives, beta, anneal_epochs)


@register(
    "recvae",
    init="constant(0)",
    trainer=AUTOENCODER,
    uses_y_range=False,
    epoch_cost=6.0,
    rates=False,
    space={
        "n_factors": Param("int", 32, 256, log=True),
        "lr": Param("float", 1e-4, 1e-2, log=True),
        "gamma": Param("float", 0.001, 0.02, log=True),
        "dropout": Param("float", 0.2, 0.7),
        "positives": POSITIVES,
    },
    check=lambda hidden, dropout, positives, gamma, encoder_passes: _check(
        hidden, dropout, positives, gamma=gamma, encoder_passes=encoder_passes
    ),
)
def _recvae(n_users, n_movies, n_factors, y_range, sparse, *, hidden=600, dropout=0.5, positives=0.0, gamma=0.005,
            encoder_passes=3):  # fmt: skip
    """RecVAE (Shenbin et al. 2020): Mult-VAE with a composite prior, a denser encoder and alternating updates."""
    return RecVAE(n_users, n_movies, n_factors, hidden, dropout, positives, gamma, encoder_passes)
