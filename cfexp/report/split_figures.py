"""Pictures of a split: one bar of the ratings cut into their parts (the random split), or the parts on a time axis
(the time-aware splits), with the cuts where there are some."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

ROLES = {
    "train": "fits every trial",
    "validation": "selects: best epoch, pruning, the sampler, the best trial",
    "test": "scores once: the best configuration refit on train + validation",
}
COLORS = {"train": "#4c78a8", "validation": "#f58518", "test": "#54a24b"}


def splits_figure(sizes: dict[str, int], path: Path) -> Path:
    """One bar of the ratings cut into its parts; the legend gives each part's size and use."""
    figure, ax = plt.subplots(figsize=(9, 2.2))
    total, left = sum(sizes.values()), 0
    for name, count in sizes.items():
        if not count:
            continue
        label = f"{name}: {count:,} ratings ({count / total:.0%}), {ROLES[name]}"
        ax.barh(0, count, left=left, color=COLORS[name], edgecolor="white", label=label)
        ax.text(left + count / 2, 0, name, ha="center", va="center", color="white", fontsize=9, weight="bold")
        left += count
    ax.set(xlim=(0, total), yticks=[], xlabel="ratings (each part a seeded random draw of the rows)")
    ax.spines[["top", "right", "left"]].set_visible(False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False, fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path


def timeline_figure(timestamps: np.ndarray, parts: dict[str, np.ndarray], cuts: dict[str, int | None], path: Path):
    """How many ratings of each part fall in each month: train above, the held-out parts below (on their own scale,
    so that a few hundred held-out ratings still show beside a hundred thousand), with the time cuts as lines."""
    when = pd.to_datetime(timestamps, unit="s")
    months = pd.period_range(when.min().to_period("M"), when.max().to_period("M"), freq="M")
    figure, axes = plt.subplots(2, 1, figsize=(9, 4.2), sharex=True, height_ratios=(3, 2))
    for ax, names in zip(axes, (("train",), ("validation", "test")), strict=True):
        bottom = np.zeros(len(months))
        for name in names:
            rows = parts[name]
            if not len(rows):
                continue
            counts = pd.Series(when[rows].to_period("M")).value_counts().reindex(months, fill_value=0).to_numpy()
            label = f"{name}: {len(rows):,} ratings, {ROLES[name]}"
            ax.bar(months.to_timestamp(), counts, bottom=bottom, width=25, color=COLORS[name], label=label)
            bottom += counts
        for cut in cuts.values():
            if cut is not None:
                ax.axvline(pd.to_datetime(cut, unit="s"), color="black", linestyle="--", linewidth=1)
        ax.set(ylabel="ratings")
        ax.spines[["top", "right"]].set_visible(False)
    for name, cut in cuts.items():
        if cut is not None:
            axes[0].annotate(
                f"{name} from {pd.to_datetime(cut, unit='s'):%Y-%m-%d}",
                (pd.to_datetime(cut, unit="s"), 1),
                xycoords=("data", "axes fraction"),
                xytext=(-4, -4),
                textcoords="offset points",
                rotation=90,
                ha="right",
                va="top",
                fontsize=8,
            )
    axes[1].set(xlabel="month of the rating")
    handles = [h for ax in axes for h in ax.get_legend_handles_labels()[0]]
    labels = [label for ax in axes for label in ax.get_legend_handles_labels()[1]]
    axes[1].legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False, fontsize=8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path
