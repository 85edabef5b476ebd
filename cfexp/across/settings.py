"""One setting of an experiment made concrete: its command-line arguments (the experiment's, plus the setting's
`--set` overrides), its experiment named for its data, and its data read, filtered and split. The sweep checks
every setting with it before anything is written; the report reads every setting's studies with it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from cfexp.config.across_table import Setting
from cfexp.data import key as data_key
from cfexp.data.dataset import Dataset, load_dataset
from cfexp.data.inputs import experiment_from
from cfexp.errors import UserError
from cfexp.variants import applicable


@dataclass
class Resolved:
    setting: Setting
    args: argparse.Namespace  # the arguments a sweep of this setting alone takes
    experiment: object  # config.Experiment, named for its data, with the studies its data allow
    dataset: Dataset
    key: data_key.DataKey


def resolve(args: argparse.Namespace, setting: Setting) -> Resolved:
    """The setting as the experiment it would be alone; a setting that cannot be read is refused naming it."""
    one = argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *setting.overrides()]})
    one.across, one.in_setting = [], setting.label
    try:
        experiment = experiment_from(one, need_runs=False)
        dataset = load_dataset(experiment.data)
        key = data_key.data_key(dataset, experiment)
        experiment, _ = applicable.studies_for(data_key.named_for_data(experiment, key), dataset.ratings)
    except UserError as exc:
        raise UserError(f"setting {setting.label}: {exc}") from None
    return Resolved(setting, one, experiment, dataset, key)
