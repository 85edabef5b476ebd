"""What a command reads from its arguments: the experiment with the CLI's overrides, and its data."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from cfexp.errors import UserError


def experiment_from(args: argparse.Namespace, need_runs: bool = True):
    """The experiment TOML with `--set`, `--device` and `--ratings` applied (no data is read yet)."""
    from cfexp.config.experiment import load_experiment

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"device={json.dumps(args.device)}")
    experiment = load_experiment(args.experiment, overrides)
    if args.ratings and args.ratings != experiment.data.ratings:
        data = replace(experiment.data, ratings=args.ratings)
        renamed = any(o.partition("=")[0].strip() == "name" for o in overrides)
        experiment = replace(experiment, data=data, data_from_cli=not renamed)
    if need_runs and not experiment.runs:
        raise UserError(f"{args.experiment} has no [[runs]]")
    return experiment


def load_inputs(args: argparse.Namespace, need_runs: bool = True):
    """The experiment and its data (cfexp.data.dataset.Dataset: read, filtered and split)."""
    from cfexp.data.dataset import load_dataset

    experiment = experiment_from(args, need_runs)
    return experiment, load_dataset(experiment.data)
