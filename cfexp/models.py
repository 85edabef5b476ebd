"""The variant registry: each variant is a small nn.Module builder plus its default search space; init schemes."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from cfexp.errors import UserError

# ---------------------------------------------------------------- init schemes


INIT_ARITY = {"uniform": 2, "constant": 1, "normal": 2}


@dataclass(frozen=True)
class Init:
    """How embedding weights start: uniform(a, b), constant(c) or normal(mean, std)."""

    kind: str
    args: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Init:
        match = re.fullmatch(r"\s*(\w+)\s*\(([^)]*)\)\s*", text)
        if not match or match.group(1) not in INIT_ARITY:
            raise UserError(f"bad init {text!r}: use uniform(a, b), constant(c) or normal(mean, std)")
        kind = match.group(1)
        try:
            args = tuple(float(a) for a in match.group(2).split(",") if a.strip())
        except ValueError:
            raise UserError(f"bad init {text!r}: arguments must be numbers") from None
        if len(args) != INIT_ARITY[kind]:
            raise UserError(f"bad init {text!r}: {kind} takes {INIT_ARITY[kind]} number(s)")
        if kind == "uniform" and args[0] > args[1]:
            raise UserError(f"bad init {text!r}: uniform(a, b) needs a <= b")
        if kind == "normal" and args[1] < 0:
            raise UserError(f"bad init {text!r}: normal's std must be >= 0")
        if kind == "uniform" and args[0] == args[1]:
            # The lesson's uniform_(0.01, 0.01) is a constant; call it what it is.
            return cls("constant", (args[0],))
        return cls(kind, args)

    def apply(self, weight: torch.Tensor) -> None:
        with torch.no_grad():
            if self.kind == "uniform":
                weight.uniform_(*self.args)
            elif self.kind == "constant":
                weight.fill_(self.args[0])
            else:
                weight.normal_(*self.args)

    def __str__(self) -> str:
        return f"{self.kind}({', '.join(f'{a:g}' for a in self.args)})"


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


# ---------------------------------------------------------------- the modules


def _sigmoid_range(x: torch.Tensor, y_range: tuple[float, float] | None) -> torch.Tensor:
    if y_range is None:
        return x
    low, high = y_range
    return torch.sigmoid(x) * (high - low) + low


class EmbeddingModel(nn.Module):
    """A model of user and movie embedding rows: `forward` looks the rows up, `score` turns them into ratings.

    Splitting the two lets a trainer gather rows itself (e.g. for lazily-regularized sparse updates) and reuse
    the variant's own scoring.
    """

    user_tables: tuple[str, ...] = ("u",)
    movie_tables: tuple[str, ...] = ("m",)

    def tables(self) -> tuple[list[nn.Embedding], list[nn.Embedding]]:
        return [getattr(self, n) for n in self.user_tables], [getattr(self, n) for n in self.movie_tables]

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        user_side, movie_side = self.tables()
        u = torch.cat([e(users) for e in user_side], 1) if len(user_side) > 1 else user_side[0](users)
        m = torch.cat([e(movies) for e in movie_side], 1) if len(movie_side) > 1 else movie_side[0](movies)
        return self.score(u, m)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # A variant whose score is link(raw) with raw bilinear in the rows may also define
    # score_jacobian(u, m) -> (score, link'(raw) or None, d raw / d [u; m] stacked as (2B, width)),
    # so that a trainer can skip autograd, whose per-op overhead dominates at small batch sizes.


class EmbeddingDot(EmbeddingModel):
    """The lesson's EmbeddingDot: rating = user factors · movie factors."""

    def __init__(self, n_users: int, n_movies: int, n_factors: int, sparse: bool = False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return (u * m).sum(1)

    def score_jacobian(self, u: torch.Tensor, m: torch.Tensor):
        return (u * m).sum(1), None, torch.cat([m, u])


class EmbeddingDotBias(EmbeddingModel):
    """Dot product plus user and movie biases, optionally squashed by a sigmoid into y_range."""

    user_tables = ("u", "ub")
    movie_tables = ("m", "mb")

    def __init__(self, n_users: int, n_movies: int, n_factors: int, y_range=None, sparse: bool = False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)
        self.ub = nn.Embedding(n_users, 1, sparse=sparse)
        self.mb = nn.Embedding(n_movies, 1, sparse=sparse)
        self.n_factors = n_factors
        self.y_range = tuple(y_range) if y_range is not None else None
        self.register_buffer("bias_column", torch.tensor([n_factors]), persistent=False)
        # y_range as tensors: multiplying by a Python float costs a scalar-to-tensor copy on every small batch
        low, high = self.y_range or (0.0, 1.0)
        self.register_buffer("range_low", torch.tensor(float(low)), persistent=False)
        self.register_buffer("range_width", torch.tensor(float(high - low)), persistent=False)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        f = self.n_factors
        res = (u[:, :f] * m[:, :f]).sum(1) + u[:, f] + m[:, f]
        return _sigmoid_range(res, self.y_range)

    def score_jacobian(self, u: torch.Tensor, m: torch.Tensor):
        # d res / d u = [m's factors, 1] and d res / d m = [u's factors, 1]
        jac = torch.cat([m, u]).index_fill_(1, self.bias_column, 1.0)
        # u · [m's factors, 1] is the factor product plus the user bias; add the movie bias
        res = torch.linalg.vecdot(u, jac[: len(u)]).add_(m[:, self.n_factors])
        if self.y_range is None:
            return res, None, jac
        s = torch.sigmoid(res)
        slope = torch.addcmul(s, s, s, value=-1).mul_(self.range_width)
        return torch.addcmul(self.range_low, s, self.range_width), slope, jac


class BayesianMF(EmbeddingModel):
    """Biased matrix factorization averaged over posterior draws (cfexp.gibbs fits it), clipped to y_range.

    Before fitting, the tables hold the sampler's starting point; after, the posterior mean: `u` and `m` are the
    kept draws' factors side by side, scaled by 1/sqrt(draws), so that u · m is the draws' average product."""

    user_tables = ("u", "ub")
    movie_tables = ("m", "mb")

    def __init__(self, n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin=1):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors)
        self.m = nn.Embedding(n_movies, n_factors)
        self.ub = nn.Embedding(n_users, 1)
        self.mb = nn.Embedding(n_movies, 1)
        self.register_buffer("offset", torch.zeros(()))
        self.y_range = tuple(y_range)
        self.noise_precision, self.learn_noise = float(noise_precision), bool(learn_noise)
        self.burn_in, self.thin = burn_in, thin

    def set_posterior(self, user_factors, user_bias, movie_factors, movie_bias, offset: float) -> None:
        self.u = nn.Embedding.from_pretrained(user_factors, freeze=False)
        self.m = nn.Embedding.from_pretrained(movie_factors, freeze=False)
        self.ub = nn.Embedding.from_pretrained(user_bias, freeze=False)
        self.mb = nn.Embedding.from_pretrained(movie_bias, freeze=False)
        self.offset.fill_(offset)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        f = u.shape[1] - 1
        res = torch.linalg.vecdot(u[:, :f], m[:, :f]) + u[:, f] + m[:, f] + self.offset
        return res.clamp(*self.y_range)


class EmbeddingNN(EmbeddingModel):
    """fastai's EmbeddingNN idea: concatenated embeddings → MLP → sigmoid into y_range."""

    def __init__(self, n_users, n_movies, n_factors, y_range, hidden: int, dropout: float, sparse=False):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.m = nn.Embedding(n_movies, n_factors, sparse=sparse)
        self.mlp = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * n_factors, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )
        self.y_range = tuple(y_range)

    def score(self, u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return _sigmoid_range(self.mlp(torch.cat([u, m], 1)).squeeze(1), self.y_range)


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
    trainer: str = "sgd"  # "sgd": cfexp.train.fit; "gibbs": cfexp.gibbs.fit (a sampler: no lr, no optimizer)

    @property
    def ignores(self) -> frozenset[str]:
        """Searchable run settings this variant's trainer does not use."""
        return SGD_ONLY if self.trainer == "gibbs" else frozenset()

    @property
    def unused_settings(self) -> frozenset[str]:
        """Run settings this variant's trainer does not use, searchable or not: not logged as its params."""
        return SGD_ONLY | SGD_RECIPE if self.trainer == "gibbs" else frozenset()


REGISTRY: dict[str, Variant] = {}
SGD_ONLY = frozenset({"lr", "weight_decay", "row_l2", "momentum", "batch_size"})
SGD_RECIPE = frozenset({"optimizer", "lazy_sgd", "one_cycle", "schedule"})

BASE_SPACE = {
    "n_factors": Param("int", 8, 256, log=True),
    "lr": Param("float", 1e-3, 0.3, log=True),
    "weight_decay": Param("float", 1e-6, 1e-2, log=True),
}


def register(
    name: str, *, init: str, space: dict[str, Param] | None = None, uses_y_range: bool = True, trainer: str = "sgd"
):
    """Register a builder `fn(n_users, n_movies, n_factors, y_range, sparse, **options) -> nn.Module`."""

    def decorate(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        params = inspect.signature(build).parameters
        options = {k: p.default for k, p in params.items() if p.kind == p.KEYWORD_ONLY}
        doc = (build.__doc__ or name).strip().splitlines()[0]
        base = {k: p for k, p in BASE_SPACE.items() if trainer == "sgd" or k not in SGD_ONLY}
        spec = Variant(name, build, {**base, **(space or {})}, init, doc, options, uses_y_range, trainer)
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
    space={"hidden": Param("int", 8, 256, log=True), "dropout": Param("float", 0.0, 0.5)},
)
def _nn(n_users, n_movies, n_factors, y_range, sparse, *, hidden=64, dropout=0.1):
    """Concatenated embeddings through an MLP, then a sigmoid into y_range (fastai's EmbeddingNN)."""
    return EmbeddingNN(n_users, n_movies, n_factors, y_range, hidden, dropout, sparse)


@register(
    "bpmf",
    init="normal(0, 0.3)",
    trainer="gibbs",
    space={
        "n_factors": Param("int", 4, 32, log=True),
        "noise_precision": Param("float", 1.2, 3.0, log=True),
    },
)
def _bpmf(n_users, n_movies, n_factors, y_range, sparse, *, noise_precision=2.0, learn_noise=False, burn_in=4, thin=1):
    """Bayesian biased MF by Gibbs sampling (BPMF), the average of its posterior draws clipped to y_range."""
    return BayesianMF(n_users, n_movies, n_factors, y_range, noise_precision, learn_noise, burn_in, thin)


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
    **_options,
) -> None:
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
