"""Each setting's studies read back from the stores (never re-trained), and the matrix of studies × settings:
each study's final model's test figure, its rank within the setting, and the mean rank.

Two matrices, one per kind of figure: test MSE over the studies that predict ratings (lower is better), and test
NDCG@k over every study (higher is better). A rank is 1 for the best in its setting; ties share the mean rank.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

import pandas as pd

from cfexp.across.settings import Resolved, resolve
from cfexp.config.across_table import Setting
from cfexp.data import key as data_key
from cfexp.data.dataset import Dataset
from cfexp.errors import UserError
from cfexp.report.collect import Stores, Study
from cfexp.variants.registry import get_variant

FIGURES = {"mse": ("test_loss", True), "ndcg": ("test_ndcg_at_{k}", False)}  # key, and whether lower is better


@dataclass
class SettingResult:
    resolved: Resolved  # the setting, its experiment (named for its data), its data and their key
    studies: list[Study]
    experiment_id: str | None = None
    scores: dict = field(default_factory=dict)  # per-user test figures of its final models (cfexp.across.paired)

    @property
    def label(self) -> str:
        return self.resolved.setting.label

    @property
    def setting(self) -> Setting:
        return self.resolved.setting

    @property
    def experiment(self):
        return self.resolved.experiment

    @property
    def dataset(self) -> Dataset:
        return self.resolved.dataset

    @property
    def key(self) -> data_key.DataKey:
        return self.resolved.key

    def tested(self) -> list[Study]:
        """The studies with a final model scored on test."""
        return [st for st in self.studies if st.final is not None]


def collect(
    args: argparse.Namespace, settings: tuple[Setting, ...], stores: Stores, on_open=None
) -> list[SettingResult]:
    """Every setting's experiment, data and studies; a setting with no sweep in the stores is refused in one line."""
    found = []
    for setting in settings:
        resolved = resolve(args, setting)
        name = resolved.experiment.name
        if on_open is not None:
            on_open(name)
        studies = stores.studies(name)
        if not studies:
            raise UserError(
                f"setting {setting.label} has no sweep in the stores ({name}): run cfexp sweep "
                f"{args.experiment} with the same settings first"
            )
        for study in studies:
            data_key.check_tagged(f"study {study.name}", study.data, resolved.key)
        found.append(SettingResult(resolved, studies, stores.experiment_id(name)))
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
