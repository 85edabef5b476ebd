"""The report's protocol section: how the ratings were cut (at random, at a time cut, or per user by time), the
filters before it, the cold rows it leaves, and the optimism of selecting on validation (each study's best validation
figure minus its final model's test figure).
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

from cfexp.report.collect import Study
from cfexp.report.sections import Section, fmt, md_table
from cfexp.report.split_figures import ROLES, splits_figure, timeline_figure


def split_sizes(split) -> dict[str, int]:
    return {"train": len(split.train), "validation": len(split.val), "test": len(split.test)}


def protocol_section(experiment, dataset, studies: list[Study], folder: Path) -> Section:
    s = Section("Protocol: the splits")
    split, data = dataset.split, experiment.data
    sizes = split_sizes(split)
    s.add(_how_cut(split, data, sizes, lesson=dataset.ratings.source == "ml-latest-small"))
    s.add(md_table([["split", "ratings", "used for"]] + [[k, f"{v:,}", ROLES[k]] for k, v in sizes.items() if v]))
    if dataset.ratings.timestamps is not None and data.split != "random":
        parts = {"train": split.train, "validation": split.val, "test": split.test}
        cuts = {"test": split.about.get("test_from"), "validation": split.about.get("val_from")}
        s.figure(timeline_figure(dataset.ratings.timestamps, parts, cuts, folder / "splits.png").name, "The splits")
    else:
        s.figure(splits_figure(sizes, folder / "splits.png").name, "The three splits")
    if dataset.filtered is not None:
        s.add(f"Filtered before the split ({_filters(data)}): {dataset.filtered.sentence().removeprefix('filters: ')}.")
    s.add(_cold(dataset))
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


def _how_cut(split, data, sizes: dict[str, int], lesson: bool) -> str:
    kind = split.about.get("kind", data.split)
    after = (
        "No trial, pruner or sampler sees a test row; each study's best trial is refit on train + validation for the "
        "epochs it chose and scored once on test."
    )
    if kind == "temporal":
        test_from, val_from = split.about.get("test_from"), split.about.get("val_from")
        test = (
            f"test is every rating from {_day(test_from)} on (the latest {data.test_pct:g} by time, {sizes['test']:,})"
        )
        if test_from is None:
            test = "there is no test part"
        return (
            f'A global time cut (`split = "temporal"`): {test}; validation is every earlier rating from '
            f"{_day(val_from)} on (the latest {data.val_pct:g} of the rest, {sizes['validation']:,}); train is what "
            f"came before ({sizes['train']:,}). Ratings at the second of a cut are held out with it. This asks how "
            f"well a model predicts the future from the past. {after if test_from is not None else ''}"
        )
    if kind == "user-last":
        whole = split.about.get("users_whole", 0)
        return (
            f'Each user\'s own history (`split = "user-last"`, holdout {data.holdout}): per user, by time, the last '
            f"{data.holdout} rating(s) are test ({sizes['test']:,} in all) and the {data.holdout} before them "
            f"validation ({sizes['validation']:,}); the rest train ({sizes['train']:,}). "
            f"{split.about.get('users_split', 0):,} users are split so; {whole:,} have too few ratings to hold out "
            f"twice and stay whole in train. This asks what each user does next. {after}"
        )
    if sizes["test"]:
        theirs = lesson and (data.test_pct, data.seed) == (0.2, 42)
        why = (
            ", the lesson's validation rows, so that test figures compare with the lesson and with peers measured on "
            "them"
            if theirs
            else ", a seeded random draw of the rows"
        )
        return (
            f"The test split is {sizes['test']:,} ratings: fastai's `get_cv_idxs` at {data.test_pct:g} and seed "
            f"{data.seed}{why}. Validation is a seeded {data.val_pct:g} of the other rows ({sizes['validation']:,}); "
            f"train is the rest ({sizes['train']:,}). {after}"
        )
    return (
        f"Two splits, as the lesson: {sizes['train']:,} train, {sizes['validation']:,} validation. "
        "There is no test split, so every figure here is a validation figure: it selected the trial it scores."
    )


def _cold(dataset) -> str:
    """The cold rows of each held-out part, and what the metrics do with them."""
    rows = [["held out", "fitted on", "cold rows", "users with no row fitted", "movies with no row fitted"]]
    for part, counts in dataset.cold().items():
        rows.append(
            [
                "validation" if part == "val" else "test",
                "train" if part == "val" else "train + validation",
                f"{counts['rows']:,} of {counts['of_rows']:,} ({counts['rows'] / max(counts['of_rows'], 1):.1%})",
                f"{counts['users']:,} of {counts['of_users']:,}",
                f"{counts['movies']:,} of {counts['of_movies']:,}",
            ]
        )
    return (
        "Cold rows: held-out ratings whose user or movie has no row in what the model is fitted on, so a factor "
        "model has learned nothing for it. They are scored like the others, never dropped: MSE takes the model's "
        "prediction from its untouched parameters, and in ranking a cold user is ranked from them while a cold "
        "movie, which is no candidate, is a relevant movie that no list can hit (docs/evaluation.md).\n\n"
        + md_table(rows)
    )


def _filters(data) -> str:
    return ", ".join(f"{k} {v}" for k, v in data.filters.items())


def _day(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _gap(val: float | None, test: float | None) -> str:
    if val is None or test is None or not (math.isfinite(val) and math.isfinite(test)):
        return "-"
    return f"{val - test:+.4f}"
