"""Figures logged as run artifacts, drawn off the main thread (pyplot-free, or on the tracking thread only)."""

from __future__ import annotations

import io


def learning_curve(history: list[dict], title: str):
    """A pyplot-free figure, so that it can be drawn off the main thread."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.2), dpi=80)
    ax = figure.subplots()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation")
    ax.set(xlabel="epoch", ylabel="MSE", title=title)
    ax.legend()
    figure.subplots_adjust(left=0.14, bottom=0.15, right=0.97, top=0.9)
    return figure


def png_of(axes) -> bytes:
    """A pyplot Axes (Optuna's plots) as PNG bytes; its figure is closed. Call it on the tracking thread only: it
    is the one thread that uses pyplot."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    axes.figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(axes.figure)
    return buffer.getvalue()
