"""Bayesian factorization machines fitted by Gibbs sampling, each epoch one sweep of the sampler: `bfm` with its
feature groups chosen per study, and its two classic configurations, `bpmf` (users and movies) and `bsvdpp` (plus
each user's implicit set)."""

from __future__ import annotations

import math

from cfexp.errors import UserError
from cfexp.fit import gibbs
from cfexp.models.bayesian import BayesianMF, BayesianSVDpp
from cfexp.variants.registry import SGD_ONLY, SGD_RECIPE, Param, Trainer, register


def _keeps_a_draw(run, model) -> str | None:
    if run.epochs <= model.burn_in:
        return (
            f"run {run.name!r}: {run.epochs} Gibbs sweep(s) keep no draw after burn_in = {model.burn_in}; "
            "give it more epochs or a shorter burn_in"
        )
    return None


def _sampler_settings(params: dict, options: dict) -> str:
    kept = ", ".join(f"{k} {params.get(k, options[k])}" for k in ("burn_in", "thin"))
    return f"init {params.get('init')}, {params.get('epochs')} Gibbs sweeps, {kept}"


# a sampler has no lr and no optimizer; its epochs report the noise precision they drew with
GIBBS = Trainer(
    "gibbs",
    gibbs.fit,
    SGD_ONLY,
    SGD_RECIPE,
    ranks_each_epoch=False,
    check=_keeps_a_draw,
    settings=_sampler_settings,
    epoch_metrics=("noise_precision",),
)


FEATURE_GROUPS = ("implicit", "flipped", "time")


def _check_sampler(noise_precision, learn_noise, burn_in, thin, features=(), time_bins=1) -> None:
    if not (isinstance(noise_precision, int | float) and 0 < noise_precision < math.inf):
        raise UserError(f"noise_precision must be a number > 0, got {noise_precision}")
    if not isinstance(learn_noise, bool):
        raise UserError(f"learn_noise must be true or false, got {learn_noise!r}")
    if not isinstance(burn_in, int) or isinstance(burn_in, bool) or burn_in < 0:
        raise UserError(f"burn_in must be an integer >= 0, got {burn_in!r}")
    if not isinstance(thin, int) or isinstance(thin, bool) or thin < 1:
        raise UserError(f"thin must be an integer >= 1, got {thin!r}")
    if isinstance(features, str) or not all(f in FEATURE_GROUPS for f in features):
        known = ", ".join(FEATURE_GROUPS)
        raise UserError(f"features must be a list of feature groups out of {known}, got {features!r}")
    if not isinstance(time_bins, int) or isinstance(time_bins, bool) or time_bins < 1:
        raise UserError(f"time_bins must be an integer >= 1, got {time_bins!r}")


SAMPLER_SPACE = {"n_factors": Param("int", 4, 32, log=True), "noise_precision": Param("float", 1.2, 3.0, log=True)}


@register(
    "bpmf",
    init="normal(0, 0.3)",
    trainer=GIBBS,
    epoch_cost=0.2,  # a sweep at rank ~20: ~0.055 s on the lesson's data; 5 trials of 60 took 16 s, 3 SGD ones 20 s
    space=SAMPLER_SPACE,
    check=_check_sampler,
)
def _bpmf(n_users, n_movies, n_factors, y_range, sparse, *, noise_precision=2.0, learn_noise=False, burn_in=4, thin=1):
    """Bayesian biased MF by Gibbs sampling (BPMF), the average of its posterior draws clipped to y_range."""
    return BayesianMF(n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)


@register("bsvdpp", init="normal(0, 0.3)", trainer=GIBBS, epoch_cost=0.3, space=SAMPLER_SPACE, check=_check_sampler)
def _bsvdpp(
    n_users, n_movies, n_factors, y_range, sparse, *, noise_precision=2.0, learn_noise=False, burn_in=4, thin=1
):
    """Bayesian SVD++ by Gibbs sampling (Rendle et al. 2019): BPMF plus each user's implicit set of train movies."""
    return BayesianSVDpp(n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)


@register("bfm", init="normal(0, 0.3)", trainer=GIBBS, epoch_cost=0.5, space=SAMPLER_SPACE, check=_check_sampler)
def _bfm(
    n_users,
    n_movies,
    n_factors,
    y_range,
    sparse,
    *,
    features=FEATURE_GROUPS,
    time_bins=20,
    noise_precision=2.0,
    learn_noise=False,
    burn_in=4,
    thin=1,
):
    """Bayesian factorization machine by Gibbs sampling over users, movies and the chosen feature groups: implicit
    (a user's train movies), flipped (a movie's train users), time (a rating's time bin) (Rendle et al. 2019)."""
    features = tuple(f for f in FEATURE_GROUPS if f in features)
    sampler = (noise_precision, learn_noise, burn_in, thin)
    return BayesianMF(n_users, n_movies, n_factors, y_range, *sampler, features=features, bins=time_bins)
