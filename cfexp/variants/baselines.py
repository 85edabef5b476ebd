"""The baselines every model must beat, each fitted in one closed-form pass: the mean, biases, popularity."""

from __future__ import annotations

from cfexp.errors import UserError
from cfexp.fit import baselines
from cfexp.models.modules import BiasModel, Popularity
from cfexp.variants.registry import CLOSED_FORM_UNUSED, SGD_ONLY, Param, Trainer, register

CLOSED_FORM = Trainer(
    "closed_form",
    baselines.fit,
    SGD_ONLY | {"n_factors"},
    CLOSED_FORM_UNUSED,
    settings=lambda params, options: "none (fitted in closed form)",
)


@register("mean", init="constant(0)", trainer=CLOSED_FORM, uses_y_range=False, epoch_cost=0.01)
def _mean(n_users, n_movies, n_factors, y_range, sparse):
    """The global mean rating of the training set, for every pair (a baseline)."""
    return BiasModel(n_users, n_movies, None)


def _check_damping(damping) -> None:
    if not isinstance(damping, int | float) or isinstance(damping, bool) or damping < 0:
        raise UserError(f"damping must be a number >= 0, got {damping!r}")


@register(
    "bias",
    init="constant(0)",
    trainer=CLOSED_FORM,
    uses_y_range=False,
    epoch_cost=0.01,
    space={"damping": Param("float", 0.5, 50.0, log=True)},
    check=_check_damping,
    yardstick="rating",
)
def _bias(n_users, n_movies, n_factors, y_range, sparse, *, damping=5.0):
    """The global mean plus damped movie and user biases, in closed form (LensKit's Bias; a baseline)."""
    return BiasModel(n_users, n_movies, damping)


@register(
    "popular",
    init="constant(0)",
    trainer=CLOSED_FORM,
    uses_y_range=False,
    epoch_cost=0.01,
    rates=False,
    yardstick="popularity",
)
def _popular(n_users, n_movies, n_factors, y_range, sparse):
    """The movies rated most often in training, for everyone: ranks only (a baseline)."""
    return Popularity(n_movies)
