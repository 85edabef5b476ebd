"""The report's protocol section: the three splits, what each is for, and the optimism of selecting on validation
(each study's best validation figure minus its final model's test figure).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from cfexp.report.collect import Study
from cfexp.report.sections import Section, fmt, md_table

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


def split_sizes(split) -> dict[str, int]:
    return {"train": len(split.train), "validation": len(split.val), "test": len(split.test)}


def protocol_section(experiment, split, studies: list[Study], folder: Path) -> Section:
    s = Section("Protocol: the splits")
    sizes = split_sizes(split)
    data = experiment.data
    if sizes["test"]:
        s.add(
            f"The test split is {sizes['test']:,} ratings: fastai's `get_cv_idxs` at {data.test_pct:g} and seed "
            f"{data.seed}, the lesson's validation rows, so that test figures compare with the lesson and with peers "
            f"measured on them. Validation is a seeded {data.val_pct:g} of the other rows ({sizes['validation']:,}); "
            f"train is the rest ({sizes['train']:,}). No trial, pruner or sampler sees a test row; each study's best "
            "trial is refit on train + validation for the epochs it chose and scored once on test."
        )
    else:
        s.add(
            f"Two splits, as the lesson: {sizes['train']:,} train, {sizes['validation']:,} validation. "
            "There is no test split, so every figure here is a validation figure: it selected the trial it scores."
        )
    s.add(md_table([["split", "ratings", "used for"]] + [[k, f"{v:,}", ROLES[k]] for k, v in sizes.items() if v]))
    s.figure(splits_figure(sizes, folder / "splits.png").name, "The three splits")
    tested = [st for st in studies if st.final is not None]
    if tested:
        s.add(
            "Optimism: how much better each study's best trial looked on the validation split that chose it than its "
            "final model scores on test (validation minus test; a negative MSE gap and a positive NDCG gap mean the "
            "validation figure flattered it). The final model also trains on the validation rows, which by itself "
            "helps test."
        )
        rows = [["study", "val MSE (selection)", "test MSE", "optimism", "val NDCG", "test NDCG", "optimism"]]
        for st in tested:
            ndcg = next((k for k in st.best.ranking if k.startswith("ndcg_at_")), "ndcg_at_10")
            val_mse = st.best.best_val_loss if st.rates else math.nan
            test_mse, val_ndcg, test_ndcg = st.test("test_loss"), st.best.ranking.get(ndcg), st.test(f"test_{ndcg}")
            rows.append(
                [
                    st.label,
                    fmt(val_mse),
                    fmt(test_mse),
                    _gap(val_mse, test_mse),
                    fmt(val_ndcg),
                    fmt(test_ndcg),
                    _gap(val_ndcg, test_ndcg),
                ]
            )
        s.add(md_table(rows))
    return s


def _gap(val: float | None, test: float | None) -> str:
    if val is None or test is None or not (math.isfinite(val) and math.isfinite(test)):
        return "-"
    return f"{val - test:+.4f}"
