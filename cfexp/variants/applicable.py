"""Which of an experiment's studies can run on its data: on implicit feedback (no ratings), only the variants that
rank, with their rating thresholds at 0 (every interaction a positive) and no longer searched; without timestamps,
none that is time-aware. Each study left out is named in one line with the reason, and an experiment of which none
can run is refused.
"""

from __future__ import annotations

from dataclasses import replace

from cfexp.errors import UserError
from cfexp.variants.registry import get_variant


def studies_for(experiment, ratings) -> tuple[object, list[str]]:
    """The experiment with only the studies its data allow, and a line for each one left out."""
    if experiment.sweep is None or not (ratings.implicit or ratings.timestamps is None):
        return experiment, []
    kept, skipped = [], []
    for spec in experiment.sweep.studies:
        if ratings.implicit and get_variant(spec.run.variant).rates:
            skipped.append(
                f"skipped study {spec.name}: {spec.run.variant} predicts ratings, and {ratings.source} has none "
                "(implicit feedback: every row a positive)"
            )
        elif ratings.timestamps is None and _needs_times(spec):
            skipped.append(
                f"skipped study {spec.name}: its time feature group needs timestamps, and {ratings.source} has none"
            )
        else:
            kept.append(_without_thresholds(spec) if ratings.implicit else spec)
    if not kept and ratings.implicit:
        raise UserError(
            f"nothing in {experiment.name} can run on {ratings.source}: it has no ratings (implicit feedback) and "
            "every study's variant predicts ratings; add a ranking variant (popular, bpr, ease or ials)"
        )
    if not kept:
        raise UserError(f"nothing in {experiment.name} can run on {ratings.source}: every study needs timestamps")
    return replace(experiment, sweep=replace(experiment.sweep, studies=tuple(kept))), skipped


def _needs_times(spec) -> bool:
    """A study of a time-aware configuration (a Gibbs factorization machine with the `time` group)."""
    return "time" in {**get_variant(spec.run.variant).options, **spec.run.options}.get("features", ())


def _without_thresholds(spec):
    """The study with each rating threshold of its variant (Param.threshold) fixed at 0 and not searched."""
    names = [name for name, param in get_variant(spec.run.variant).space.items() if param.threshold]
    if not names:
        return spec
    run = replace(spec.run, options={**spec.run.options, **dict.fromkeys(names, 0.0)})
    enqueue = tuple({k: v for k, v in params.items() if k not in names} for params in spec.enqueue)
    return replace(spec, run=run, space={**spec.space, **dict.fromkeys(names, False)}, enqueue=enqueue)
