"""The lesson's variants, fitted by SGD: the dot product, with biases, through a sigmoid, and fastai's MLP."""

from __future__ import annotations

from cfexp.errors import UserError
from cfexp.fit.sgd import fit
from cfexp.models.modules import EmbeddingDot, EmbeddingDotBias, EmbeddingNN
from cfexp.variants.registry import Param, Trainer, register

SGD = Trainer("sgd", fit)  # cfexp.fit.sgd: index-tensor batches, torch's optimizers or lazy SGD, LR phases


@register("dot", init="uniform(0, 0.05)", trainer=SGD, uses_y_range=False)
def _dot(n_users, n_movies, n_factors, y_range, sparse):
    """Plain dot product of user and movie embeddings (the lesson's EmbeddingDot)."""
    return EmbeddingDot(n_users, n_movies, n_factors, sparse)


@register("dot_bias", init="uniform(-0.01, 0.01)", trainer=SGD, uses_y_range=False)
def _dot_bias(n_users, n_movies, n_factors, y_range, sparse):
    """Dot product plus user and movie biases, unbounded output."""
    return EmbeddingDotBias(n_users, n_movies, n_factors, None, sparse)


@register("dot_bias_sigmoid", init="uniform(-0.01, 0.01)", trainer=SGD)
def _dot_bias_sigmoid(n_users, n_movies, n_factors, y_range, sparse):
    """Dot product plus biases through a sigmoid scaled to y_range (the lesson's EmbeddingDotBias)."""
    return EmbeddingDotBias(n_users, n_movies, n_factors, y_range, sparse)


def _check_nn(hidden, dropout) -> None:
    if int(hidden) != hidden or hidden < 1:
        raise UserError(f"hidden must be a positive integer, got {hidden}")
    if not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")


@register(
    "nn",
    init="uniform(-0.01, 0.01)",
    trainer=SGD,
    epoch_cost=1.2,  # autograd and Adam: measured ~0.28 s an epoch against lazy SGD's ~0.23 on the lesson's data
    space={"hidden": Param("int", 8, 256, log=True), "dropout": Param("float", 0.0, 0.5)},
    check=_check_nn,
)
def _nn(n_users, n_movies, n_factors, y_range, sparse, *, hidden=64, dropout=0.1):
    """Concatenated embeddings through an MLP, then a sigmoid into y_range (fastai's EmbeddingNN)."""
    return EmbeddingNN(n_users, n_movies, n_factors, y_range, hidden, dropout, sparse)
