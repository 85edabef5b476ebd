"""The cross-setting report's pictures: the rank matrix as a heat map, and the critical-difference diagram
(scikit-posthocs draws it from the mean ranks and Nemenyi's p-values)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scikit_posthocs


def rank_heatmap(ranked: pd.DataFrame, floors: dict[str, str], title: str, path: Path) -> str:
    """Studies (rows, best mean rank first) × settings, each cell its rank within the setting; floors marked."""
    values = ranked.drop(columns="mean rank")
    figure, ax = plt.subplots(figsize=(1.6 + 1.5 * values.shape[1], 0.9 + 0.38 * values.shape[0]))
    worst = max(len(values), 2)
    image = ax.imshow(values.to_numpy(), cmap="viridis_r", aspect="auto", vmin=1, vmax=worst)
    for (row, col), rank in np.ndenumerate(values.to_numpy()):
        shade = "black" if rank < (1 + worst) / 2 else "white"  # dark text on the light (best) end of viridis_r
        ax.text(col, row, f"{rank:g}", ha="center", va="center", color=shade, fontsize=9)
    labels = [f"{study} (floor: {floors[study]})" if floors.get(study) else study for study in values.index]
    labels = [f"{label}   mean {mean:.2f}" for label, mean in zip(labels, ranked["mean rank"], strict=True)]
    ax.set_yticks(range(len(values)), labels, fontsize=9)
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=20, ha="right", fontsize=9)
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, label="rank in the setting (1: best)", shrink=0.8)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path.name


def cd_diagram(mean_ranks: pd.Series, nemenyi: pd.DataFrame, cd: float, title: str, path: Path) -> str:
    """Demšar's critical-difference diagram: studies on the mean-rank axis, joined where Nemenyi cannot tell them
    apart."""
    figure, ax = plt.subplots(figsize=(9, 0.6 + 0.28 * len(mean_ranks)))
    scikit_posthocs.critical_difference_diagram(mean_ranks, nemenyi, ax=ax, cd=cd)
    ax.set_title(title, fontsize=10, pad=28)  # above the CD bar and its label
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
    return path.name
