"""Friedman's test over the settings, and Nemenyi's post-hoc test with its critical difference (Demšar 2006,
"Statistical Comparisons of Classifiers over Multiple Data Sets"): scipy's friedmanchisquare and scikit-posthocs'
posthoc_nemenyi_friedman, over a matrix of studies × settings.

Each setting is a block and each study a treatment. With fewer than MIN_SETTINGS settings or MIN_STUDIES studies
the test is not run, and the refusal says why in words; the chi-square approximation it relies on is rough below
about ten settings, which the verdict says too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import scikit_posthocs
from scipy import stats

MIN_SETTINGS = 3
MIN_STUDIES = 3
ALPHA = 0.05


@dataclass(frozen=True)
class Friedman:
    settings: int
    studies: int
    statistic: float = math.nan
    p: float = math.nan
    cd: float = math.nan  # Nemenyi's critical difference of mean ranks at ALPHA
    refusal: str = ""  # why the test was not run, in words
    nemenyi: pd.DataFrame | None = None  # p-values between every two studies

    @property
    def ran(self) -> bool:
        return not self.refusal

    def sentence(self, what: str) -> str:
        if not self.ran:
            return self.refusal
        verdict = "differ" if self.p < ALPHA else "do not differ significantly"
        rough = "; its chi-square approximation is rough below about ten settings" if self.settings < 10 else ""
        return (
            f"Friedman's test over the {self.settings} settings: the {self.studies} studies' ranks by {what} "
            f"{verdict} (χ² = {self.statistic:.2f}, p = {self.p:.3g}{rough}). Nemenyi's critical difference at "
            f"α = {ALPHA}: {self.cd:.2f} in mean rank; two studies whose mean ranks differ by less are not told apart."
        )


def friedman(wide: pd.DataFrame, lower_is_better: bool) -> Friedman:
    """Friedman's test on a studies × settings matrix (rows: studies), and Nemenyi's post-hoc test."""
    studies, settings = wide.shape
    if settings < MIN_SETTINGS or studies < MIN_STUDIES:
        return Friedman(settings, studies, refusal=_refusal(settings, studies))
    blocks = wide.T if lower_is_better else -wide.T  # settings × studies, lower is better
    statistic, p = stats.friedmanchisquare(*(blocks[c].to_numpy() for c in blocks.columns))
    nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(blocks.to_numpy())
    nemenyi.index = nemenyi.columns = list(wide.index)
    q = stats.studentized_range.ppf(1 - ALPHA, studies, math.inf) / math.sqrt(2)
    cd = q * math.sqrt(studies * (studies + 1) / (6 * settings))
    return Friedman(settings, studies, float(statistic), float(p), float(cd), nemenyi=nemenyi)


def _refusal(settings: int, studies: int) -> str:
    if settings < MIN_SETTINGS:
        return (
            f"Friedman's test and the critical-difference diagram need at least {MIN_SETTINGS} settings, and there "
            f"{'is' if settings == 1 else 'are'} {settings}: with so few, a rank can differ by chance alone and no "
            "test over the settings would mean anything, so the ranks are shown without one."
        )
    return (
        f"Friedman's test needs at least {MIN_STUDIES} studies in every setting, and {studies} have a figure in all "
        "of them: the ranks are shown without it."
    )
