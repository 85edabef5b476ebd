"""The ranking-only variants: the floors of top-N recommendation (BPR, EASE, iALS, ItemKNN) and the denoising
linear autoencoder above them (DLAE)."""

from __future__ import annotations

from cfexp.fit import bpr, ease, ials, itemknn
from cfexp.models.modules import EmbeddingBPR
from cfexp.variants.registry import CLOSED_FORM_UNUSED, SGD_ONLY, SGD_RECIPE, Param, Trainer, register

BPR = Trainer("bpr", bpr.fit, unused=frozenset({"lazy_sgd", "y_range"}))  # ranking loss, cfexp.fit.sgd's optimizers
EASE = Trainer(
    "ease",
    ease.fit,
    SGD_ONLY | {"n_factors"},
    CLOSED_FORM_UNUSED,
    settings=lambda params, options: "none (fitted in closed form)",
)
ITEMKNN = Trainer(
    "itemknn",
    ease.fit,  # EASE's one pass, with the neighbours' weights (ItemKNN.weights_of)
    SGD_ONLY | {"n_factors"},
    CLOSED_FORM_UNUSED,
    settings=lambda params, options: "none (one pass of similarities)",
)
IALS = Trainer("ials", ials.fit, SGD_ONLY, SGD_RECIPE | {"y_range"})  # alternating least squares


@register(
    "bpr",
    init="normal(0, 0.1)",
    trainer=BPR,
    uses_y_range=False,
    epoch_cost=1.0,
    rates=False,
    space={"n_factors": Param("int", 16, 256, log=True), "lr": Param("float", 1e-3, 5e-2, log=True)},
)
def _bpr(n_users, n_movies, n_factors, y_range, sparse):
    """Bayesian personalised ranking (Rendle et al. 2009): u · m + movie bias, trained on sampled negatives."""
    return EmbeddingBPR(n_users, n_movies, n_factors)


@register(
    "ease",
    init="constant(0)",
    trainer=EASE,
    uses_y_range=False,
    epoch_cost=0.5,
    rates=False,
    space={
        "l2": Param("float", 10.0, 3000.0, log=True),
        "positives": Param("categorical", choices=(0.0, 4.0), threshold=True),
    },
    yardstick="top-n",
)
def _ease(n_users, n_movies, n_factors, y_range, sparse, *, l2=200.0, positives=0.0, max_items=0):
    """EASE (Steck 2019): a movie × movie matrix in closed form; ranks only (the top-N floor)."""
    return ease.EASE(n_users, n_movies, l2, positives, max_items)


@register(
    "dlae",
    init="constant(0)",
    trainer=EASE,
    uses_y_range=False,
    epoch_cost=0.5,
    rates=False,
    space={
        "l2": Param("float", 10.0, 3000.0, log=True),
        "dropout": Param("float", 0.05, 0.75),
        "positives": Param("categorical", choices=(0.0, 4.0), threshold=True),
        "near_weight": Param("float", 0.0, 0.6, threshold=True),  # a grade of ratings: 0 without them
    },
)
def _dlae(n_users, n_movies, n_factors, y_range, sparse, *, l2=200.0, dropout=0.25, positives=0.0, max_items=0,
          zero_diagonal=False, near_weight=0.0):  # fmt: skip
    """DLAE (Steck 2020): EASE's closed form under input dropout p, on an X that near_weight may grade;
    zero_diagonal = true is EDLAE. Ranks only."""
    return ease.EASE(n_users, n_movies, l2, positives, max_items, dropout, zero_diagonal, near_weight)


@register(
    "itemknn",
    init="constant(0)",
    trainer=ITEMKNN,
    uses_y_range=False,
    epoch_cost=0.3,
    rates=False,
    space={
        "neighbours": Param("int", 10, 1000, log=True),
        "shrink": Param("float", 0.0, 100.0),
        "positives": Param("categorical", choices=(0.0, 4.0), threshold=True),
    },
)
def _itemknn(n_users, n_movies, n_factors, y_range, sparse, *, neighbours=200, shrink=10.0, positives=0.0,
             max_items=0):  # fmt: skip
    """ItemKNN: shrunk cosine similarity between movies, each keeping its nearest neighbours. Ranks only."""
    return itemknn.ItemKNN(n_users, n_movies, neighbours, shrink, positives, max_items)


@register(
    "ials",
    init="uniform(0, 0.01)",  # the `implicit` package's
    trainer=IALS,
    uses_y_range=False,
    epoch_cost=0.1,
    rates=False,
    space={
        "n_factors": Param("int", 16, 256, log=True),
        "reg": Param("float", 1e-4, 1e-1, log=True),
        "alpha": Param("float", 0.3, 30.0, log=True),
        "positives": Param("categorical", choices=(0.0, 4.0), threshold=True),
    },
)
def _ials(
    n_users,
    n_movies,
    n_factors,
    y_range,
    sparse,
    *,
    alpha=1.0,
    reg=1e-3,
    reg_exponent=1.0,
    positives=0.0,
    rated=False,
    solver="cg",
    cg_steps=3,
):
    """Implicit ALS (Hu, Koren and Volinsky 2008) with frequency-scaled regularization; ranks only."""
    return ials.ImplicitMF(n_users, n_movies, n_factors, alpha, reg, reg_exponent, positives, rated, solver, cg_steps)
