"""The report's figures, each saved as a PNG beside the report."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def save(figure, folder: Path, name: str) -> str:
    """Write the figure as PNG and return its path relative to the report."""
    path = folder / f"{name}.png"
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)
    return path.name


def rating_histogram(frame: pd.DataFrame, folder: Path) -> str:
    figure, ax = plt.subplots(figsize=(6, 3))
    counts = frame.rating.value_counts().sort_index()
    ax.bar(counts.index, counts.values, width=0.4)
    ax.set(xlabel="rating", ylabel="ratings", title="Ratings by value")
    return save(figure, folder, "ratings_histogram")


def learning_curves(curves: dict[str, list[dict]], folder: Path) -> str:
    """Every variant's best trial on the same axes: validation solid, training dashed."""
    figure, ax = plt.subplots(figsize=(8, 4.5))
    for i, (label, history) in enumerate(curves.items()):
        color = f"C{i % 10}"
        epochs = [h["epoch"] for h in history]
        ax.plot(epochs, [h["val_loss"] for h in history], color=color, label=f"{label} (val)")
        if all("train_loss" in h for h in history):
            ax.plot(epochs, [h["train_loss"] for h in history], color=color, linestyle="--", alpha=0.6)
    ax.set(xlabel="epoch", ylabel="MSE", title="Best trial of each variant: validation (solid), training (dashed)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 1.6))
    ax.legend(fontsize=8)
    return save(figure, folder, "learning_curves")


def optuna_figure(study, kind: str, folder: Path, name: str) -> str | None:
    from optuna.visualization import matplotlib as optuna_plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            axes = getattr(optuna_plots, f"plot_{kind}")(study)
        except (RuntimeError, ValueError):  # e.g. importances with fewer than two complete trials
            return None
    axes.figure.set_size_inches(6, 3.5)
    return save(axes.figure, folder, name)


def singular_value_plot(shares: dict[str, np.ndarray], folder: Path) -> str:
    figure, ax = plt.subplots(figsize=(6, 3.5))
    for label, s in shares.items():
        ax.semilogy(np.arange(1, len(s) + 1), np.maximum(s, 1e-12), marker=".", label=label)
    ax.set(xlabel="index", ylabel="σᵢ / σ₁", title="Singular values of the movie-factor matrix")
    ax.legend(fontsize=8)
    return save(figure, folder, "singular_values")


def pca_plot(points: pd.DataFrame, folder: Path) -> str:
    figure, ax = plt.subplots(figsize=(9, 7))
    ax.scatter(points.pc1, points.pc2, s=12)
    for row in points.itertuples():
        ax.annotate(row.title[:32], (row.pc1, row.pc2), fontsize=7, alpha=0.85)
    ax.set(xlabel="first principal component", ylabel="second", title="Movie factors of the most-rated movies (PCA)")
    return save(figure, folder, "movie_pca")
