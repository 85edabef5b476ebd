"""The `[sweep]` table of an experiment: trial budget, sampler, pruner, and the studies (variants) to tune."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cfexp.config.eval_table import objective_key
from cfexp.errors import UserError

SAMPLERS = ("tpe", "tpe-optuna", "gp", "qmc-tpe", "random")
DEFAULT_SAMPLER = "gp"  # chosen by make bench's sampler section (BENCHMARKS.md, "Samplers"): the best at small budgets

SWEEP_DEFAULTS: dict[str, Any] = {
    "trials": 10,  # per study: complete plus pruned trials; a rerun tops the study up to it
    "max_failures": 0,  # a study stops after this many failed (diverged, broken) trials; 0: as many as its budget
    "timeout": 0,  # seconds per study; 0 means none
    "sampler": DEFAULT_SAMPLER,  # one of SAMPLERS (cfexp.search.samplers makes them)
    "startup_trials": -1,  # random trials before the sampler's model takes over; -1: fitted to each study's budget
    "seed": 42,
    "pruner": "median",  # median | hyperband | none
    "pruner_startup_trials": 3,
    "pruner_warmup_epochs": 2,
    "objective": "val_loss",  # or a ranking metric at [eval]'s k, e.g. "ndcg@10" (maximised); per study too
    "space": {},  # search-space overrides for every study
    "variants": [],
}
PRUNERS = ("median", "hyperband", "none")
STUDY_KEYS = {"space", "enqueue", "trials", "max_failures", "objective"}


@dataclass(frozen=True)
class StudySpec:
    """One study: a named run (variant, init, recipe) whose hyperparameters Optuna tunes."""

    name: str
    run: Any  # config.RunConfig, the run's fixed settings before tuning
    space: dict[str, Any] = field(default_factory=dict)  # overrides of the variant's default space; False drops one
    enqueue: tuple[dict, ...] = ()  # trials to try first, when the study is new
    trials: int | None = None  # this study's budget, when it differs from [sweep]'s
    max_failures: int | None = None
    objective: str = "val_loss"  # the metric key the study optimises: val_loss (minimised) or e.g. ndcg_at_10
    inherited: frozenset[str] = frozenset()  # space keys from [sweep.space] only (skipped where the variant has none)

    @property
    def direction(self) -> str:
        return "minimize" if self.objective == "val_loss" else "maximize"


@dataclass(frozen=True)
class SweepConfig:
    trials: int
    max_failures: int
    timeout: float
    sampler: str
    startup_trials: int | None  # None: fitted to each study's budget (cfexp.search.samplers.startup_trials)
    seed: int
    pruner: str
    pruner_startup_trials: int
    pruner_warmup_epochs: int
    studies: tuple[StudySpec, ...]


def parse_sweep(
    raw: dict, defaults: dict, resolve_run, check_keys, run_keys: set[str], where: str, k: int = 10
) -> SweepConfig:
    """Validate `[sweep]`; each `[[sweep.variants]]` entry is a run (over `[train]` defaults) plus space/enqueue."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: [sweep] must be a table")
    check_keys(raw, set(SWEEP_DEFAULTS), f"{where} [sweep]")
    settings = {**SWEEP_DEFAULTS, **raw}
    for key in ("trials", "max_failures", "seed", "pruner_startup_trials", "pruner_warmup_epochs"):
        if not isinstance(settings[key], int) or isinstance(settings[key], bool) or settings[key] < 0:
            raise UserError(f"{where} [sweep]: {key} must be a non-negative integer, got {settings[key]!r}")
    if settings["trials"] < 1:
        raise UserError(f"{where} [sweep]: trials must be >= 1")
    if not isinstance(settings["timeout"], int | float) or settings["timeout"] < 0:
        raise UserError(f"{where} [sweep]: timeout must be a number of seconds >= 0")
    startup = settings["startup_trials"]
    if not isinstance(startup, int) or isinstance(startup, bool) or startup < -1:
        raise UserError(f"{where} [sweep]: startup_trials must be an integer >= 0 (or -1: fitted to the budget)")
    if settings["sampler"] not in SAMPLERS:
        raise UserError(f"{where} [sweep]: sampler must be one of {', '.join(SAMPLERS)}")
    if settings["pruner"] not in PRUNERS:
        raise UserError(f"{where} [sweep]: pruner must be one of {', '.join(PRUNERS)}")
    objective_key(settings["objective"], k, f"{where} [sweep]")
    entries = settings["variants"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UserError(f"{where}: [sweep] needs at least one [[sweep.variants]] table")
    common_space = _space(settings["space"], f"{where} [sweep.space]")
    studies = []
    for i, entry in enumerate(entries):
        label = f"{where} sweep variant {i + 1}"
        check_keys(entry, run_keys | {"name"} | STUDY_KEYS, label)
        run = resolve_run({**defaults, **{k: v for k, v in entry.items() if k not in STUDY_KEYS}}, label)
        own_space = _space(entry.get("space", {}), f"{label} space")
        space = {**common_space, **own_space}
        enqueue = entry.get("enqueue", [])
        if not isinstance(enqueue, list) or not all(isinstance(e, dict) for e in enqueue):
            raise UserError(f"{label}: enqueue must be a list of tables of parameter values")
        for key in ("trials", "max_failures"):
            value = entry.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UserError(f"{label}: {key} must be an integer >= 1, got {value!r}")
        objective = objective_key(entry.get("objective", settings["objective"]), k, label)
        studies.append(
            StudySpec(
                run.name,
                run,
                space,
                tuple(enqueue),
                entry.get("trials"),
                entry.get("max_failures"),
                objective,
                frozenset(common_space) - set(own_space),
            )
        )
    names = [s.name for s in studies]
    if len(set(names)) != len(names):
        raise UserError(f"{where}: sweep variant names must be unique, got {names}")
    return SweepConfig(
        trials=settings["trials"],
        max_failures=settings["max_failures"],
        timeout=float(settings["timeout"]),
        sampler=settings["sampler"],
        startup_trials=None if settings["startup_trials"] == -1 else settings["startup_trials"],
        seed=settings["seed"],
        pruner=settings["pruner"],
        pruner_startup_trials=settings["pruner_startup_trials"],
        pruner_warmup_epochs=settings["pruner_warmup_epochs"],
        studies=tuple(studies),
    )


def _space(raw: Any, where: str) -> dict[str, Any]:
    """Each entry: {low, high[, log][, type]} or {choices = [...]}, or false to stop searching that key."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: must be a table of ranges")
    space: dict[str, Any] = {}
    for key, spec in raw.items():
        if spec is False:
            space[key] = False
            continue
        if not isinstance(spec, dict):
            raise UserError(f"{where}: {key} must be {{low, high, log}}, {{choices = [...]}} or false")
        allowed = {"low", "high", "log", "type", "choices"}
        extra = set(spec) - allowed
        if extra:
            raise UserError(f"{where}: {key} has unknown field(s) {', '.join(sorted(extra))}")
        if "choices" in spec:
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise UserError(f"{where}: {key}.choices must be a non-empty list")
        else:
            low, high = spec.get("low"), spec.get("high")
            numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
            if not numbers or not low <= high:
                raise UserError(f"{where}: {key} needs numbers low <= high, got {low!r}, {high!r}")
            if spec.get("log") and low <= 0:
                raise UserError(f"{where}: {key} is on a log scale, so low must be > 0")
        space[key] = dict(spec)
    return space
