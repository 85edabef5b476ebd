"""From per-fold scores to what can be claimed: mean ± sd, a 95% t interval, and paired tests against the best.

The input is one row per (study, fold) with a column per metric. Each study's folds are the same K splits, so the
comparison with the best study is paired: scipy's paired t-test, and Wilcoxon's signed-rank test beside it (with
5 folds its smallest possible two-sided p is 0.0625, so it alone can never reach 0.05)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
LOWER_IS_BETTER = {"mse": True}  # any other metric (the ranking ones) is higher-better


@dataclass(frozen=True)
class Comparison:
    """A study's folds against the best study's on one metric; `lead` is how much better the best is."""

    metric: str
    best: str
    other: str
    lead: float
    lead_sd: float
    t_p: float
    wilcoxon_p: float
    folds: int

    def sentence(self) -> str:
        """E.g. "bpmf beats dot_bias_sigmoid by 0.019 ± 0.004 val MSE (paired t-test p = 0.001, 5 folds)"."""
        what = "val MSE" if self.metric == "mse" else self.metric.replace("_at_", "@")
        verdict = "beats" if self.t_p < 0.05 else "is not significantly better than"
        return (
            f"{self.best} {verdict} {self.other} by {self.lead:.4f} ± {self.lead_sd:.4f} {what} "
            f"(paired t-test {_p(self.t_p)}, Wilcoxon {_p(self.wilcoxon_p)}, {self.folds} folds)"
        )


def summarise(folds: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per study: folds, mean, sd and the 95% t interval of `metric`, best first (studies without it left out)."""
    rows = []
    for study, scores in folds.groupby("study", sort=False)[metric]:
        values = scores.dropna().to_numpy(dtype=float)
        if len(values) == 0:
            continue
        mean = float(values.mean())
        sd = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        low, high = _interval(values)
        rows.append({"study": study, "folds": len(values), "mean": mean, "sd": sd, "ci_low": low, "ci_high": high})
    table = pd.DataFrame(rows, columns=["study", "folds", "mean", "sd", "ci_low", "ci_high"])
    return table.sort_values("mean", ascending=LOWER_IS_BETTER.get(metric, False), ignore_index=True)


def compare_with_best(folds: pd.DataFrame, metric: str) -> list[Comparison]:
    """Paired tests of the best study (by mean) against every other one, over the folds both have."""
    table = summarise(folds, metric)
    if len(table) < 2:
        return []
    best = table.study.iloc[0]
    wide = folds.pivot_table(index="fold", columns="study", values=metric)
    sign = 1.0 if LOWER_IS_BETTER.get(metric, False) else -1.0
    found = []
    for other in table.study.iloc[1:]:
        pair = wide[[best, other]].dropna()
        lead = sign * (pair[other] - pair[best]).to_numpy()  # > 0: the best is better on that fold
        found.append(
            Comparison(
                metric,
                best,
                other,
                float(lead.mean()),
                float(lead.std(ddof=1)) if len(lead) > 1 else math.nan,
                _paired_t(lead),
                _wilcoxon(lead),
                len(lead),
            )
        )
    return found


def _interval(values: np.ndarray) -> tuple[float, float]:
    if len(values) < 2:
        return math.nan, math.nan
    mean, sem = values.mean(), stats.sem(values)
    if sem == 0:
        return float(mean), float(mean)
    low, high = stats.t.interval(CONFIDENCE, len(values) - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _paired_t(differences: np.ndarray) -> float:
    if len(differences) < 2 or np.all(differences == differences[0]):
        return 0.0 if len(differences) >= 2 and differences[0] != 0 else math.nan
    return float(stats.ttest_1samp(differences, 0.0).pvalue)


def _wilcoxon(differences: np.ndarray) -> float:
    if len(differences) < 2 or not np.any(differences):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples: scipy warns that the exact distribution is used
        return float(stats.wilcoxon(differences).pvalue)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"
