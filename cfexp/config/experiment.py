"""Experiment TOML → validated, typed dataclasses; `--set key=value` overrides are applied before validation."""

from __future__ import annotations

import copy
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cfexp.config.across_table import Setting, parse_across
from cfexp.config.checks import NUMBER, check_keys, check_types, table
from cfexp.config.data_table import DataConfig, parse_data
from cfexp.config.eval_table import EvalConfig, parse_eval
from cfexp.config.overrides import apply_override
from cfexp.config.plugins import import_variants
from cfexp.config.sweep_table import SweepConfig, parse_sweep
from cfexp.errors import UserError

# Settings a run may carry, with their defaults. `[train]` gives defaults for every run; a run overrides them.
RUN_DEFAULTS: dict[str, Any] = {
    "variant": None,
    "n_factors": 50,
    "init": None,  # None: the variant's default init
    "y_range": None,  # None: the data's (min, max) rating
    "options": {},  # variant-specific options, e.g. nn's hidden and dropout
    "optimizer": "sgd",
    "lr": None,  # None: the schedule's first-phase lr
    "momentum": 0.9,
    "weight_decay": 0.0,
    "batch_size": 64,
    "schedule": [
        [3, 0.1],
        [3, 0.01],
    ],  # phases [[epochs, lr], ...], or "one_cycle" / "constant" with epochs + lr
    "epochs": None,
    "seed": 42,
    "device": "auto",
    "lazy_sgd": True,  # plain SGD on embedding rows, lazily regularized: same result, faster (see lazy_sgd.py)
    "row_l2": 0.0,  # L2 on the embedding rows each batch uses, per use (as Funk SVD / Surprise regularize)
    "restore_best": False,  # end with the best epoch's weights (early stopping on val loss)
    "patience": 0,  # epochs without a better val loss before stopping; 0: never stop early
}
RUN_TYPES: dict[str, tuple[type, ...]] = {
    "variant": (str,),
    "n_factors": (int,),
    "init": (str,),
    "y_range": (list,),
    "options": (dict,),
    "optimizer": (str,),
    "lr": NUMBER,
    "momentum": NUMBER,
    "weight_decay": NUMBER,
    "batch_size": (int,),
    "schedule": (list, str),
    "epochs": (int,),
    "seed": (int,),
    "device": (str,),
    "lazy_sgd": (bool,),
    "row_l2": NUMBER,
    "restore_best": (bool,),
    "patience": (int,),
}
TOP_LEVEL = {"name", "description", "variants_from", "data", "train", "runs", "sweep", "eval", "across"}


# The RunConfig fields that say how to train (fitting.Recipe's fields), as opposed to what model to build.
RECIPE_KEYS = ("optimizer", "phases", "one_cycle", "momentum", "weight_decay", "batch_size", "seed", "device")
RECIPE_KEYS += ("lazy_sgd", "row_l2", "restore_best", "patience")


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved training run: the model, and how it is trained."""

    name: str
    variant: str
    n_factors: int = 50
    init: str | None = None
    y_range: tuple[float, float] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    optimizer: str = "sgd"
    phases: tuple[tuple[int, float], ...] = ((3, 0.1), (3, 0.01))
    one_cycle: bool = False
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    seed: int = 42
    device: str = "auto"
    lazy_sgd: bool = True
    row_l2: float = 0.0
    restore_best: bool = False
    patience: int = 0

    @property
    def lr(self) -> float:
        return self.phases[0][1]

    @property
    def epochs(self) -> int:
        return sum(e for e, _ in self.phases)

    @property
    def schedule(self) -> str:
        if self.one_cycle:
            return f"one_cycle({self.epochs}, {self.lr:g})"
        return " → ".join(f"{e}@{lr:g}" for e, lr in self.phases)

    def with_lr(self, lr: float) -> RunConfig:
        """The same run at another peak lr: later phases keep their ratio to the first."""
        scale = lr / self.lr
        return replace(self, phases=tuple((e, p * scale) for e, p in self.phases))

    def params(self) -> dict[str, Any]:
        """Every resolved setting, flat, as a reader (or MLflow) wants it."""
        flat = {k: v for k, v in asdict(self).items() if k not in ("options", "phases")}
        flat.update({"lr": self.lr, "epochs": self.epochs, "schedule": self.schedule, **self.options})
        return flat

    def recipe_kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in RECIPE_KEYS}


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    data: DataConfig
    runs: tuple[RunConfig, ...]
    path: str = ""
    sweep: SweepConfig | None = None
    eval: EvalConfig = field(default_factory=EvalConfig)
    data_from_cli: bool = False  # [data] differs from the file's (--ratings, --set data.*): see cfexp.data.key
    variants_from: tuple[str, ...] = ()  # the user's variant files it imported (cfexp.config.plugins)
    across: tuple[Setting, ...] = ()  # the settings it is to be run under ([across]; cfexp.config.across_table)


def load_experiment(path: str | Path, overrides: list[str] | None = None) -> Experiment:
    """Read and validate an experiment TOML, applying `key=value` overrides first."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"experiment file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    as_written = raw.get("data"), raw.get("name")
    as_written = copy.deepcopy(as_written)
    for override in overrides or []:
        apply_override(raw, override, run_keys=set(RUN_DEFAULTS), top_level=TOP_LEVEL)
    experiment = parse_experiment(raw, name=path.stem, base=path.parent, source=str(path))
    # a name given on the command line is the user's choice for these data; else other data get a name of their own
    renamed = raw.get("name") != as_written[1]
    try:  # the [data] the file itself says, to tell whether the command line changed it
        written = parse_data({} if as_written[0] is None else {"data": as_written[0]}, path.parent, str(path))
    except UserError:
        written = None
    return replace(experiment, data_from_cli=experiment.data != written and not renamed)


def parse_experiment(raw: dict, name: str, base: Path = Path("."), source: str = "experiment") -> Experiment:
    check_keys(raw, TOP_LEVEL, source)
    variants_from = import_variants(raw.get("variants_from", []), base, source)
    data_config = parse_data(raw, base, source)
    defaults = table(raw, "train", source)
    check_keys(defaults, set(RUN_DEFAULTS), f"{source} [train]")
    runs_raw = raw.get("runs", [])
    if not isinstance(runs_raw, list) or not all(isinstance(r, dict) for r in runs_raw):
        raise UserError(f"{source}: runs must be an array of tables ([[runs]])")
    runs = tuple(resolve_run({**defaults, **r}, f"{source} run {i + 1}") for i, r in enumerate(runs_raw))
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise UserError(f"{source}: run names must be unique, got {names}")
    evaluation = parse_eval(raw.get("eval", {}), check_keys, source)
    across = parse_across(raw["across"], source) if "across" in raw else ()
    sweep = None
    if "sweep" in raw:
        sweep = parse_sweep(raw["sweep"], defaults, resolve_run, check_keys, set(RUN_DEFAULTS), source, evaluation.k)
    experiment_name = str(raw.get("name", name))
    if not experiment_name or "/" in experiment_name:
        raise UserError(f"{source}: name must be non-empty and contain no '/', got {experiment_name!r}")
    return Experiment(
        sweep=sweep,
        name=experiment_name,
        description=str(raw.get("description", "")),
        data=data_config,
        runs=runs,
        path=source,
        eval=evaluation,
        variants_from=variants_from,
        across=across,
    )


def resolve_run(raw: dict, where: str) -> RunConfig:
    """Merge a run's table with the defaults, check types and ranges, and resolve its LR schedule."""
    check_keys(raw, set(RUN_DEFAULTS) | {"name"}, where)
    settings = {**RUN_DEFAULTS, **raw}
    check_types(settings, RUN_TYPES, where)
    if not settings["variant"]:
        raise UserError(f"{where}: needs a variant")
    name = str(settings.get("name") or settings["variant"])
    where = f"{where} ({name})"
    phases, one_cycle = _schedule(settings, where)
    y_range = settings["y_range"]
    if y_range is not None:
        if len(y_range) != 2 or not all(isinstance(v, NUMBER) for v in y_range) or not y_range[0] < y_range[1]:
            raise UserError(f"{where}: y_range must be [low, high] with low < high, got {y_range}")
        y_range = (float(y_range[0]), float(y_range[1]))
    for key in ("n_factors", "batch_size"):
        if settings[key] < 1:
            raise UserError(f"{where}: {key} must be >= 1, got {settings[key]}")
    if not 0 <= settings["momentum"] < 1:
        raise UserError(f"{where}: momentum must be in [0, 1), got {settings['momentum']}")
    for key in ("weight_decay", "row_l2"):
        if not (settings[key] >= 0 and math.isfinite(settings[key])):
            raise UserError(f"{where}: {key} must be >= 0, got {settings[key]}")
    return RunConfig(
        name=name,
        variant=settings["variant"],
        n_factors=settings["n_factors"],
        init=settings["init"],
        y_range=y_range,
        options=dict(settings["options"]),
        optimizer=settings["optimizer"],
        phases=phases,
        one_cycle=one_cycle,
        momentum=float(settings["momentum"]),
        weight_decay=float(settings["weight_decay"]),
        batch_size=settings["batch_size"],
        seed=settings["seed"],
        device=settings["device"],
        lazy_sgd=settings["lazy_sgd"],
        row_l2=float(settings["row_l2"]),
        restore_best=settings["restore_best"],
        patience=settings["patience"],
    )


def _schedule(settings: dict, where: str) -> tuple[tuple[tuple[int, float], ...], bool]:
    schedule, lr, epochs = settings["schedule"], settings["lr"], settings["epochs"]
    if isinstance(schedule, str):
        if schedule not in ("one_cycle", "constant"):
            raise UserError(f"{where}: schedule must be phases [[epochs, lr], ...], 'one_cycle' or 'constant'")
        if lr is None or epochs is None:
            raise UserError(f"{where}: schedule {schedule!r} needs lr and epochs")
        phases: tuple[tuple[int, float], ...] = ((epochs, float(lr)),)
        one_cycle = schedule == "one_cycle"
    else:
        try:
            phases = tuple((int(e), float(p)) for e, p in schedule)
            bad = not phases or any(int(e) != e0 for (e, _), (e0, _) in zip(phases, schedule, strict=True))
        except (TypeError, ValueError):
            bad = True
        if bad:
            raise UserError(f"{where}: schedule phases must be [[epochs, lr], ...], got {schedule}")
        one_cycle = False
        if epochs is not None and epochs != sum(e for e, _ in phases):
            raise UserError(f"{where}: epochs={epochs} disagrees with the schedule's {sum(e for e, _ in phases)}")
        if lr is not None:
            scale = float(lr) / phases[0][1]
            phases = tuple((e, p * scale) for e, p in phases)
    if any(e < 1 or not (p > 0 and math.isfinite(p)) for e, p in phases):
        raise UserError(f"{where}: every phase needs epochs >= 1 and a finite lr > 0, got {[list(p) for p in phases]}")
    return phases, one_cycle
