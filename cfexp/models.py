"""The variant registry: builders of cfexp.modules, each with its default search space and init scheme."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from cfexp.ease import EASE
from cfexp.errors import UserError
from cfexp.ials import ImplicitMF
from cfexp.inits import Init
from cfexp.modules import (
    BayesianMF,
    BayesianSVDpp,
    BiasModel,
    EmbeddingBPR,
    EmbeddingDot,
    EmbeddingDotBias,
    EmbeddingNN,
    Popularity,
)

# ---------------------------------------------------------------- search space (plain data, no optuna here)


@dataclass(frozen=True)
class Param:
    """One search-space dimension: an int or float range (optionally log) or a categorical choice."""

    kind: str  # "int" | "float" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def __post_init__(self) -> None:
        if self.kind not in ("int", "float", "categorical"):
            raise UserError(f"bad search-space kind {self.kind!r}: use int, float or categorical")
        if self.kind == "categorical":
            if not self.choices:
                raise UserError("a categorical search-space entry needs choices")
            return
        if self.low is None or self.high is None or not self.low <= self.high:
            raise UserError(f"bad search range [{self.low}, {self.high}]: needs low <= high")
        if self.log and self.low <= 0:
            raise UserError(f"bad search range [{self.low}, {self.high}]: a log range needs low > 0")


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Variant:
    name: str
    build: Callable[..., nn.Module]
    space: dict[str, Param]
    init: str
    description: str
    options: dict[str, object] = field(default_factory=dict)
    uses_y_range: bool = True
    trainer: str = "sgd"  # a key of TRAINERS: which fit trains it (cfexp.runner maps them to functions)
    epoch_cost: float = 1.0  # an epoch's time relative to lazy SGD's, for workers to take the longest study first
    rates: bool = True  # predicts ratings (has a val MSE); False: ranks only, and its studies tune a ranking metric

    @property
    def ignores(self) -> frozenset[str]:
        """Searchable run settings this variant's trainer does not use."""
        return TRAINERS[self.trainer][0]

    @property
    def unused_settings(self) -> frozenset[str]:
        """Run settings this variant's trainer does not use, searchable or not: not logged as its params."""
        return TRAINERS[self.trainer][0] | TRAINERS[self.trainer][1]


REGISTRY: dict[str, Variant] = {}
SGD_ONLY = frozenset({"lr", "weight_decay", "row_l2", "momentum", "batch_size"})
SGD_RECIPE = frozenset({"optimizer", "lazy_sgd", "one_cycle", "schedule"})
# trainer: (searchable settings it ignores, other settings it ignores)
TRAINERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "sgd": (frozenset(), frozenset()),  # cfexp.train.fit
    "gibbs": (SGD_ONLY, SGD_RECIPE),  # cfexp.gibbs.fit: a sampler, no lr and no optimizer
    "closed_form": (SGD_ONLY | {"n_factors"}, SGD_RECIPE | {"init", "epochs", "y_range", "seed"}),  # cfexp.baselines
    "bpr": (frozenset(), frozenset({"lazy_sgd", "y_range"})),  # cfexp.bpr.fit: ranking loss, cfexp.train's optimizers
    "ials": (SGD_ONLY, SGD_RECIPE | {"y_range"}),  # cfexp.ials.fit: alternating least squares
    "ease": (SGD_ONLY | {"n_factors"}, SGD_RECIPE | {"init", "epochs", "y_range", "seed"}),  # cfexp.ease: closed form
}

BASE_SPACE = {
    "n_factors": Param("int", 8, 256, log=True),
    "lr": Param("float", 1e-3, 0.3, log=True),
    "weight_decay": Param("float", 1e-6, 1e-2, log=True),
}


def register(
    name: str,
    *,
    init: str,
    space: dict[str, Param] | None = None,
    uses_y_range: bool = True,
    trainer: str = "sgd",
    epoch_cost: float = 1.0,
    rates: bool = True,
):
    """Register a builder `fn(n_users, n_movies, n_factors, y_range, sparse, **options) -> nn.Module`."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = inspect.signature(build).parameters
        options = {k: p.default for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
        doc = (build.__doc__ or name).strip().splitlines()[0]
        base = {k: p for k, p in BASE_SPACE.items() if k not in TRAINERS[trainer][0]}
        spec = Variant(
            name, build, {**base, **(space or {})}, init, doc, options, uses_y_range, trainer, epoch_cost, rates
        )
        REGISTRY[name] = spec
        return build

    return decorate


@register("dot", init="uniform(0, 0.05)", uses_y_range=False)
def _dot(n_users, n_movies, n_factors, y_range, sparse):
    """Plain dot product of user and movie embeddings (the lesson's EmbeddingDot)."""
    return EmbeddingDot(n_users, n_movies, n_factors, sparse)


@register("dot_bias", init="uniform(-0.01, 0.01)", uses_y_range=False)
def _dot_bias(n_users, n_movies, n_factors, y_range, sparse):
    """Dot product plus user and movie biases, unbounded output."""
    return EmbeddingDotBias(n_users, n_movies, n_factors, None, sparse)


@register("dot_bias_sigmoid", init="uniform(-0.01, 0.01)")
def _dot_bias_sigmoid(n_users, n_movies, n_factors, y_range, sparse):
    """Dot product plus biases through a sigmoid scaled to y_range (the lesson's EmbeddingDotBias)."""
    return EmbeddingDotBias(n_users, n_movies, n_factors, y_range, sparse)


@register(
    "nn",
    init="uniform(-0.01, 0.01)",
    epoch_cost=1.2,  # autograd and Adam: measured ~0.28 s an epoch against lazy SGD's ~0.23 on the lesson's data
    space={"hidden": Param("int", 8, 256, log=True), "dropout": Param("float", 0.0, 0.5)},
)
def _nn(n_users, n_movies, n_factors, y_range, sparse, *, hidden=64, dropout=0.1):
    """Concatenated embeddings through an MLP, then a sigmoid into y_range (fastai's EmbeddingNN)."""
    return EmbeddingNN(n_users, n_movies, n_factors, y_range, hidden, dropout, sparse)


@register(
    "bpmf",
    init="normal(0, 0.3)",
    trainer="gibbs",
    epoch_cost=0.2,  # a sweep at rank ~20: ~0.055 s on the lesson's data; 5 trials of 60 took 16 s, 3 SGD ones 20 s
    space={
        "n_factors": Param("int", 4, 32, log=True),
        "noise_precision": Param("float", 1.2, 3.0, log=True),
    },
)
def _bpmf(n_users, n_movies, n_factors, y_range, sparse, *, noise_precision=2.0, learn_noise=False, burn_in=4, thin=1):
    """Bayesian biased MF by Gibbs sampling (BPMF), the average of its posterior draws clipped to y_range."""
    return BayesianMF(n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)


@register(
    "bsvdpp",
    init="normal(0, 0.3)",
    trainer="gibbs",
    epoch_cost=0.3,
    space={
        "n_factors": Param("int", 4, 32, log=True),
        "noise_precision": Param("float", 1.2, 3.0, log=True),
    },
)
def _bsvdpp(
    n_users, n_movies, n_factors, y_range, sparse, *, noise_precision=2.0, learn_noise=False, burn_in=4, thin=1
):
    """Bayesian SVD++ by Gibbs sampling (Rendle et al. 2019): BPMF plus each user's implicit set of train movies."""
    return BayesianSVDpp(n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)


@register("mean", init="constant(0)", uses_y_range=False, trainer="closed_form", epoch_cost=0.01)
def _mean(n_users, n_movies, n_factors, y_range, sparse):
    """The global mean rating of the training set, for every pair (a baseline)."""
    return BiasModel(n_users, n_movies, None)


@register(
    "bias",
    init="constant(0)",
    uses_y_range=False,
    trainer="closed_form",
    epoch_cost=0.01,
    space={"damping": Param("float", 0.5, 50.0, log=True)},
)
def _bias(n_users, n_movies, n_factors, y_range, sparse, *, damping=5.0):
    """The global mean plus damped movie and user biases, in closed form (LensKit's Bias; a baseline)."""
    return BiasModel(n_users, n_movies, damping)


@register("popular", init="constant(0)", uses_y_range=False, trainer="closed_form", epoch_cost=0.01, rates=False)
def _popular(n_users, n_movies, n_factors, y_range, sparse):
    """The movies rated most often in training, for everyone: ranks only (a baseline)."""
    return Popularity(n_movies)


@register(
    "bpr",
    init="normal(0, 0.1)",
    uses_y_range=False,
    trainer="bpr",
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
    uses_y_range=False,
    trainer="ease",
    epoch_cost=0.5,
    rates=False,
    space={"l2": Param("float", 10.0, 3000.0, log=True), "positives": Param("categorical", choices=(0.0, 4.0))},
)
def _ease(n_users, n_movies, n_factors, y_range, sparse, *, l2=200.0, positives=0.0, max_items=0):
    """EASE (Steck 2019): a movie × movie matrix in closed form; ranks only (the top-N floor)."""
    return EASE(n_users, n_movies, l2, positives, max_items)


@register(
    "ials",
    init="uniform(0, 0.01)",  # the `implicit` package's
    uses_y_range=False,
    trainer="ials",
    epoch_cost=0.1,
    rates=False,
    space={
        "n_factors": Param("int", 16, 256, log=True),
        "reg": Param("float", 1e-4, 1e-1, log=True),
        "alpha": Param("float", 0.3, 30.0, log=True),
        "positives": Param("categorical", choices=(0.0, 4.0)),
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
    return ImplicitMF(n_users, n_movies, n_factors, alpha, reg, reg_exponent, positives, rated, solver, cg_steps)


def get_variant(name: str) -> Variant:
    if name not in REGISTRY:
        raise UserError(f"unknown variant {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def build_model(
    variant: str,
    n_users: int,
    n_movies: int,
    *,
    n_factors: int = 50,
    init: str | None = None,
    y_range: tuple[float, float] = (0.5, 5.0),
    sparse: bool = False,
    options: dict | None = None,
) -> nn.Module:
    """Build a registered variant and initialise its embeddings (uses the torch RNG: seed it first)."""
    spec = get_variant(variant)
    options = dict(options or {})
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        known = ", ".join(spec.options) or "none"
        raise UserError(f"variant {variant!r} has no option(s) {', '.join(unknown)} (it takes: {known})")
    check_hyperparameters(n_factors=n_factors, y_range=y_range, **options)
    model = spec.build(n_users, n_movies, int(n_factors), tuple(y_range), sparse, **options)
    scheme = Init.parse(init or spec.init)
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            scheme.apply(module.weight)
    return model


def check_hyperparameters(
    n_factors=None,
    y_range=None,
    hidden=None,
    dropout=None,
    noise_precision=None,
    learn_noise=None,
    burn_in=None,
    thin=None,
    damping=None,
    **_options,
) -> None:
    if damping is not None and (not isinstance(damping, int | float) or isinstance(damping, bool) or damping < 0):
        raise UserError(f"damping must be a number >= 0, got {damping!r}")
    if n_factors is not None and (int(n_factors) != n_factors or n_factors < 1):
        raise UserError(f"n_factors must be a positive integer, got {n_factors}")
    if y_range is not None and not (len(y_range) == 2 and y_range[0] < y_range[1]):
        raise UserError(f"y_range must be [low, high] with low < high, got {list(y_range)}")
    if hidden is not None and (int(hidden) != hidden or hidden < 1):
        raise UserError(f"hidden must be a positive integer, got {hidden}")
    if dropout is not None and not 0 <= dropout < 1:
        raise UserError(f"dropout must be in [0, 1), got {dropout}")
    positive = isinstance(noise_precision, int | float) and 0 < noise_precision < math.inf
    if noise_precision is not None and not positive:
        raise UserError(f"noise_precision must be a number > 0, got {noise_precision}")
    if learn_noise is not None and not isinstance(learn_noise, bool):
        raise UserError(f"learn_noise must be true or false, got {learn_noise!r}")
    if burn_in is not None and (not isinstance(burn_in, int) or isinstance(burn_in, bool) or burn_in < 0):
        raise UserError(f"burn_in must be an integer >= 0, got {burn_in!r}")
    if thin is not None and (not isinstance(thin, int) or isinstance(thin, bool) or thin < 1):
        raise UserError(f"thin must be an integer >= 1, got {thin!r}")
