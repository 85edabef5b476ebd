"""From per-fold scores to what can be claimed: mean ± sd, a 95% t interval, and paired tests against the best.

The input is one row per (study, fold) with a column per metric. Each study's folds are the same K splits, so the
comparison with the best study is paired. The test is Nadeau and Bengio's corrected resampled t-test (2003): the
folds' training sets overlap, so their differences are correlated, and the plain paired t-test's variance is too
small; the correction multiplies it by (1/K + n_test/n_train), which for K folds is 1/K + 1/(K - 1). It can reject
at 5 folds. Wilcoxon's signed-rank test is given only where it can reject: its smallest two-sided p is 2 / 2^K
(0.0625 at 5 folds), and below 6 folds the output says so instead."""

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
    t_p: float  # the corrected resampled t-test's
    wilcoxon_p: float  # NaN where Wilcoxon cannot reject at these folds
    folds: int
    low: float = math.nan  # the lead's 95% interval, with the same corrected variance as the test
    high: float = math.nan

    def sentence(self) -> str:
        """E.g. "bpmf beats dot_bias_sigmoid by 0.019 ± 0.004 MSE, 95% interval [0.012, 0.026] (corrected paired
        t-test p = 0.001, 5 folds)"."""
        what = "MSE" if self.metric == "mse" else self.metric.replace("_at_", "@")
        verdict = "beats" if self.t_p < 0.05 else "is not significantly better than"
        wilcoxon = f", Wilcoxon {_p(self.wilcoxon_p)}" if math.isfinite(self.wilcoxon_p) else ""
        interval = f", 95% interval [{self.low:.4f}, {self.high:.4f}]" if math.isfinite(self.low) else ""
        return (
            f"{self.best} {verdict} {self.other} by {self.lead:.4f} ± {self.lead_sd:.4f} {what}{interval} "
            f"(corrected paired t-test {_p(self.t_p)}{wilcoxon}, {self.folds} folds)"
        )


def wilcoxon_floor(folds: int) -> float:
    """The smallest two-sided p Wilcoxon's exact signed-rank test can give with this many folds."""
    return 2.0 / 2**folds


def wilcoxon_note(folds: int) -> str | None:
    """Why Wilcoxon's test is not shown, when it cannot reject at 0.05 with this many folds."""
    floor = wilcoxon_floor(folds)
    if floor < 0.05:
        return None
    return (
        f"Wilcoxon's signed-rank test is not shown: with {folds} folds its two-sided p is never below {floor:.4f}, "
        "so it cannot reject at 0.05; the corrected paired t-test can."
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
                corrected_t(lead),
                _wilcoxon(lead) if wilcoxon_floor(len(lead)) < 0.05 else math.nan,
                len(lead),
                *corrected_interval(lead),
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


def corrected_t(differences: np.ndarray) -> float:
    """Nadeau and Bengio's corrected resampled t-test of K-fold differences (n_test / n_train = 1 / (K - 1))."""
    k = len(differences)
    if k < 2:
        return math.nan
    mean, variance = float(differences.mean()), float(differences.var(ddof=1))
    if variance == 0:
        return 0.0 if mean != 0 else math.nan
    t = mean / math.sqrt((1 / k + 1 / (k - 1)) * variance)
    return float(2 * stats.t.sf(abs(t), k - 1))


def corrected_interval(differences: np.ndarray) -> tuple[float, float]:
    """The 95% interval of the mean difference with the corrected test's variance (what its p-value inverts)."""
    k = len(differences)
    if k < 2:
        return math.nan, math.nan
    mean = float(differences.mean())
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, k - 1) * math.sqrt((1 / k + 1 / (k - 1)) * differences.var(ddof=1))
    return mean - half, mean + half


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
