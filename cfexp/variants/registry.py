"""The variant registry: what a variant is (its builder, trainer, search space and init) and how one is built.

Every variant is declared in one module with `register`, the cfexp ones in this package (lesson, baselines, bayesian,
top_n) and a user's in any Python file an experiment names in `variants_from`. Nothing outside a variant's module
knows its trainer or the metrics its epochs report, and reports find their yardsticks by what a variant declares;
only the report's sections on the seed lesson (its figures, its init ranges, its learned biases) name the lesson's
own variants.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from cfexp.errors import UserError
from cfexp.models.inits import Init

if TYPE_CHECKING:
    from cfexp.data.ratings import TensorPart
    from cfexp.fit.common import Callback, FitResult, Recipe

# ---------------------------------------------------------------- search space (plain data, no optuna here)


@dataclass(frozen=True)
class Param:
    """One search-space dimension: an int or float range (optionally log) or a categorical choice."""

    kind: str  # "int" | "float" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()
    threshold: bool = False  # about ratings (a threshold, a grade): 0 on implicit feedback, every row a positive

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


# ---------------------------------------------------------------- trainers and variants

Fit = Callable[["nn.Module", "TensorPart", "TensorPart", "Recipe", "Sequence[Callback]"], "FitResult"]
SGD_ONLY = frozenset({"lr", "weight_decay", "row_l2", "momentum", "batch_size"})
SGD_RECIPE = frozenset({"optimizer", "lazy_sgd", "one_cycle", "schedule"})
CLOSED_FORM_UNUSED = SGD_RECIPE | {"init", "epochs", "y_range", "seed"}
EPOCH_METRICS = ("train_loss", "val_loss", "val_rmse", "val_mae")  # what every trainer may report
# What a report measures other studies against: a rating floor (each rating model's lift over it), the popularity
# floor (rating models that rank below it) and the top-N floor (the rankers above it).
YARDSTICKS = ("rating", "popularity", "top-n")


def _recipe_settings(params: dict, options: dict) -> str:
    return ", ".join(f"{k} {params.get(k)}" for k in ("init", "optimizer", "batch_size", "schedule"))


@dataclass(frozen=True)
class Trainer:
    """How a family of variants is fitted: `fit(model, train, val, recipe, callbacks) -> FitResult`, calling each
    callback's on_epoch_end(epoch, metrics) with the metrics its epochs report (all of them are logged and shown)."""

    name: str
    fit: Fit
    ignores: frozenset[str] = frozenset()  # searchable run settings it does not use (not searched, not logged)
    unused: frozenset[str] = frozenset()  # other run settings it does not use (not logged)
    ranks_each_epoch: bool = True  # False: the model exists only once the fit ends (a sampler's average of draws)
    check: Callable[[object, nn.Module], str | None] | None = None  # (run, model) -> why it cannot run, or None
    settings: Callable[[dict, dict], str] = _recipe_settings  # (params, options) -> its fixed settings, for reports
    epoch_metrics: tuple[str, ...] = ()  # what else its epochs report, to be logged and shown (a sampler's noise)


@dataclass(frozen=True)
class Variant:
    name: str
    build: Callable[..., nn.Module]
    space: dict[str, Param]
    init: str
    description: str
    trainer: Trainer
    options: dict[str, object] = field(default_factory=dict)
    uses_y_range: bool = True
    epoch_cost: float = 1.0  # an epoch's time relative to lazy SGD's, for workers to take the longest study first
    rates: bool = True  # predicts ratings (has a val MSE); False: ranks only, and its studies tune a ranking metric
    check: Callable[..., None] | None = None  # check(**options) raises UserError for impossible option values
    yardstick: str | None = None  # one of YARDSTICKS: what a report measures the other studies against

    @property
    def ignores(self) -> frozenset[str]:
        """Searchable run settings this variant's trainer does not use."""
        return self.trainer.ignores

    @property
    def unused_settings(self) -> frozenset[str]:
        """Run settings this variant's trainer does not use, searchable or not: not logged as its params."""
        return self.trainer.ignores | self.trainer.unused

    @property
    def epoch_metrics(self) -> tuple[str, ...]:
        """The per-epoch metrics its runs log and show, in the order shown (those its trainer reports)."""
        return ("lr", *self.trainer.epoch_metrics, *EPOCH_METRICS)

    def fixed_settings(self, params: dict) -> str:
        """The settings a study of it did not tune, in its trainer's terms (for reports)."""
        return self.trainer.settings(params, self.options)


REGISTRY: dict[str, Variant] = {}

BASE_SPACE = {
    "n_factors": Param("int", 8, 256, log=True),
    "lr": Param("float", 1e-3, 0.3, log=True),
    "weight_decay": Param("float", 1e-6, 1e-2, log=True),
}


def register(
    name: str,
    *,
    init: str,
    trainer: Trainer,
    space: dict[str, Param] | None = None,
    uses_y_range: bool = True,
    epoch_cost: float = 1.0,
    rates: bool = True,
    check: Callable[..., None] | None = None,
    yardstick: str | None = None,
):
    """Register a builder `fn(n_users, n_movies, n_factors, y_range, sparse, **options) -> nn.Module`: its
    keyword-only arguments are the variant's options, its docstring's first line its description."""
    if yardstick is not None and yardstick not in YARDSTICKS:
        raise UserError(f"variant {name!r}: unknown yardstick {yardstick!r}; use one of {', '.join(YARDSTICKS)}")

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = inspect.signature(build).parameters
        options = {k: p.default for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
        doc = (build.__doc__ or name).strip().splitlines()[0]
        base = {k: p for k, p in BASE_SPACE.items() if k not in trainer.ignores}
        REGISTRY[name] = Variant(
            name,
            build,
            {**base, **(space or {})},
            init,
            doc,
            trainer,
            options,
            uses_y_range,
            epoch_cost,
            rates,
            check,
            yardstick,
        )
        return build

    return decorate


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
    check_hyperparameters(n_factors=n_factors, y_range=y_range)
    if spec.check is not None:
        spec.check(**{**spec.options, **options})
    model = spec.build(n_users, n_movies, int(n_factors), tuple(y_range), sparse, **options)
    scheme = Init.parse(init or spec.init)
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            scheme.apply(module.weight)
    return model


def check_hyperparameters(n_factors=None, y_range=None) -> None:
    """What every variant shares: a positive integer rank and a proper rating range."""
    if n_factors is not None and (int(n_factors) != n_factors or n_factors < 1):
        raise UserError(f"n_factors must be a positive integer, got {n_factors}")
    if y_range is not None and not (len(y_range) == 2 and y_range[0] < y_range[1]):
        raise UserError(f"y_range must be [low, high] with low < high, got {list(y_range)}")
