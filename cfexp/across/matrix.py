"""Each setting's studies read back from the stores (never re-trained), and the matrix of studies × settings:
each study's final model's test figure, its rank within the setting, and the mean rank.

Two matrices, one per kind of figure: test MSE over the studies that predict ratings (lower is better), and test
NDCG@k over every study (higher is better). A rank is 1 for the best in its setting; ties share the mean rank.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import pandas as pd

from cfexp.config.across_table import Setting
from cfexp.data import key as data_key
from cfexp.data.dataset import Dataset, load_dataset
from cfexp.data.inputs import experiment_from
from cfexp.errors import UserError
from cfexp.report.collect import Stores, Study
from cfexp.variants import applicable
from cfexp.variants.registry import get_variant

FIGURES = {"mse": ("test_loss", True), "ndcg": ("test_ndcg_at_{k}", False)}  # key, and whether lower is better


@dataclass
class SettingResult:
    setting: Setting
    experiment: object  # config.Experiment, named for its data
    dataset: Dataset
    key: data_key.DataKey
    studies: list[Study]
    experiment_id: str | None = None

    @property
    def label(self) -> str:
        return self.setting.label

    def tested(self) -> list[Study]:
        """The studies with a final model scored on test."""
        return [st for st in self.studies if st.final is not None]


def collect(
    args: argparse.Namespace, settings: tuple[Setting, ...], stores: Stores, on_open=None
) -> list[SettingResult]:
    """Every setting's experiment, data and studies; a setting with no sweep in the stores is refused in one line."""
    found = []
    for setting in settings:
        one = argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *setting.overrides()]})
        try:
            experiment = experiment_from(one, need_runs=False)
            dataset = load_dataset(experiment.data)
        except UserError as exc:
            raise UserError(f"setting {setting.label}: {exc}") from None
        key = data_key.data_key(dataset, experiment)
        experiment = data_key.named_for_data(experiment, key)
        experiment, _ = applicable.studies_for(experiment, dataset.ratings)
        if on_open is not None:
            on_open(experiment.name)
        studies = stores.studies(experiment.name)
        if not studies:
            raise UserError(
                f"setting {setting.label} has no sweep in the stores ({experiment.name}): run cfexp sweep "
                f"{args.experiment} with the same settings first"
            )
        for study in studies:
            data_key.check_tagged(f"study {study.name}", study.data, key)
        found.append(SettingResult(setting, experiment, dataset, key, studies, stores.experiment_id(experiment.name)))
    return found


def long_frame(results: list[SettingResult], k: int) -> pd.DataFrame:
    """One row per (setting, study): its variant, floor, validation and test figures."""
    rows = []
    for result in results:
        for st in result.studies:
            variant = get_variant(st.variant)
            rows.append(
                {
                    "setting": result.label,
                    "experiment": result.experiment.name,
                    "study": st.label,
                    "variant": st.variant,
                    "floor": variant.yardstick or "",
                    "rates": variant.rates,
                    "val_mse": st.best.best_val_loss if st.best and variant.rates else math.nan,
                    "test_mse": st.test("test_loss") if variant.rates else math.nan,
                    "test_ndcg": st.test(f"test_ndcg_at_{k}"),
                    "final_run_id": st.final.run_id if st.final else None,
                }
            )
    return pd.DataFrame(rows)


def matrix(frame: pd.DataFrame, figure: str) -> pd.DataFrame:
    """Studies × settings of one figure ("test_mse" or "test_ndcg"), the studies that have it in every setting."""
    wide = frame.pivot_table(index="study", columns="setting", values=figure, aggfunc="first", sort=False)
    settings = list(dict.fromkeys(frame.setting))
    return wide.reindex(columns=settings).dropna()


def ranks(wide: pd.DataFrame, lower_is_better: bool) -> pd.DataFrame:
    """Each study's rank within each setting (1: the best), and the mean rank, best first."""
    ranked = wide.rank(axis=0, ascending=lower_is_better, method="average")
    ranked["mean rank"] = ranked.mean(axis=1)
    return ranked.sort_values("mean rank", kind="stable")
