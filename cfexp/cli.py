"""The `cfexp` command: a thin door to data, train, sweep and report."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from cfexp import __version__
from cfexp.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args) or 0
    except UserError as exc:
        print(f"cfexp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cfexp: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfexp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cfexp {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="summarise a ratings dataset and write the lesson's crosstab")
    data.add_argument("--ratings", help="ratings.csv, a folder or a zip (default: the embedded ml-latest-small)")
    data.add_argument("--crosstab", default="reports/crosstab.csv", help="where to write the crosstab CSV")
    data.add_argument("--top", type=int, default=15, help="busiest users × most-rated movies (default 15)")
    data.set_defaults(handler=cmd_data)

    variants = sub.add_parser("variants", help="list the registered model variants")
    variants.set_defaults(handler=cmd_variants)

    train = sub.add_parser("train", help="run an experiment's fixed runs")
    _experiment_args(train)
    train.set_defaults(handler=cmd_train)
    return parser


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="an experiment TOML, e.g. experiments/seed_reproduction.toml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set epochs=2 or --set runs.dot.n_factors=20",
    )
    parser.add_argument("--ratings", help="train on this ratings.csv (or folder, or zip) instead")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides every run)")
    parser.add_argument("--summary", metavar="PATH", help="write a JSON summary for scripts")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or tables")


def cmd_data(args: argparse.Namespace) -> int:
    from cfexp import data

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    ratings = data.load_ratings(args.ratings)
    split = data.split_rows(len(ratings.frame))
    info = data.summary(ratings, split)
    for key, value in info.items():
        print(f"{key:>10}: {value}")
    table = data.crosstab(ratings, args.top)
    _write_atomically(Path(args.crosstab), table.to_csv())
    print(f"{'crosstab':>10}: {args.crosstab} ({table.shape[0]} users × {table.shape[1]} movies)")
    return 0


def cmd_variants(args: argparse.Namespace) -> int:
    from cfexp.models import REGISTRY

    for name, variant in REGISTRY.items():
        space = ", ".join(variant.space)
        print(f"{name:<18} {variant.description}\n{'':<18} init {variant.init}; searches {space}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cfexp import data, train
    from cfexp.progress import EpochProgress, print_comparison, print_history

    experiment, ratings = load_inputs(args)
    split = data.split_rows(len(ratings.frame), experiment.data.val_pct, experiment.data.test_pct, experiment.data.seed)
    # Resolve every run's device, model and recipe before training any, so a bad input fails before work is done.
    on_device, runs = {}, []
    for run in experiment.runs:
        if run.device not in on_device:
            on_device[run.device] = train.to_device(ratings, split, run.device)
        tensors = on_device[run.device]
        run = train.resolved(run, tensors)
        train.build_for(run, tensors)
        train.Recipe(**run.recipe_kwargs())
        runs.append((run, tensors))
    results = []
    for run, tensors in runs:
        callbacks = [] if args.quiet else [EpochProgress(run.name)]
        _, result = train.fit_run(run, tensors, callbacks)
        if not args.quiet:
            print_history(run.name, result)
        results.append((run, result))
    if not args.quiet:
        print_comparison(results)
    if args.summary:
        write_summary(args.summary, experiment.name, data.summary(ratings, split), results)
    return 0


def load_inputs(args: argparse.Namespace):
    """The experiment with the CLI's overrides applied, and its ratings."""
    from cfexp import data
    from cfexp.config import load_experiment

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={json.dumps(args.device)}")
    experiment = load_experiment(args.experiment, overrides)
    if args.ratings:
        experiment = replace(experiment, data=replace(experiment.data, ratings=args.ratings))
    if not experiment.runs:
        raise UserError(f"{args.experiment} has no [[runs]]")
    return experiment, data.load_ratings(experiment.data.ratings)


def run_record(run, result, mlflow_run_id: str | None = None, state: str | None = None) -> dict:
    """One run as the --summary document has it."""
    record = {
        "name": run.name,
        "variant": run.variant,
        "params": run.params(),
        "history": result.history,
        "val_loss": result.val_loss,
        "best_val_loss": result.best_val_loss,
        "seconds": result.seconds,
        "state": state or ("FAIL" if result.status == "diverged" else "COMPLETE"),
        "mlflow_run_id": mlflow_run_id,
    }
    if result.reason:
        record["reason"] = result.reason
    if result.test_loss is not None:
        record["test_loss"] = result.test_loss
    return record


def write_summary(path: str, experiment: str, dataset: dict, results: list, records: list | None = None) -> None:
    records = records or [run_record(run, result) for run, result in results]
    finished = [r for r in records if math.isfinite(r["best_val_loss"])]
    best = min(finished, key=lambda r: r["best_val_loss"]) if finished else None
    document = {"experiment": experiment, "dataset": dataset, "runs": records, "best": best}
    _write_atomically(Path(path), json.dumps(_json_safe(document), indent=2) + "\n")


def _json_safe(value):
    """NaN and infinities become null: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(fh.name, path)


if __name__ == "__main__":
    raise SystemExit(main())
