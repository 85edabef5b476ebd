"""The report's honest comparisons: how every variant ranks (top-N, full ranking) and what `cfexp evaluate`'s
folds say about the leads, with intervals and paired tests."""

from __future__ import annotations

import math

import pandas as pd

from cfexp import evaluation_stats
from cfexp.ranking import METRICS
from cfexp.report.collect import Study
from cfexp.report.sections import Section, fmt, md_table


def ranking_section(studies: list[Study], k: int) -> Section | None:
    keys = [f"{name}_at_{k}" for name in METRICS]
    ranked = sorted(
        (st for st in studies if st.best and keys[0] in st.best.ranking),
        key=lambda st: -st.best.ranking[keys[0]],
    )
    if not ranked:
        return None
    s = Section("Ranking: top-10 by full ranking" if k == 10 else f"Ranking: top-{k} by full ranking")
    users = next((st.best.ranking.get("ranked_users") for st in ranked if "ranked_users" in st.best.ranking), None)
    s.add(
        "Each study's best trial, ranked for every user over every movie seen in training that the user did not "
        "rate there; a movie is relevant when the user rated it at least the relevance threshold in validation "
        '(README, "Evaluation protocol"). Users with no relevant movie are left out'
        + (f"; {int(users)} users are ranked." if users else ".")
    )
    rows = [["study", "tuned for", *(key.replace("_at_", "@") for key in keys), "best val MSE"]]
    for st in ranked:
        tuned = "val MSE" if st.objective == "val_loss" else st.objective.replace("_at_", "@")
        mse = fmt(st.best.best_val_loss) if st.rates else "-"
        rows.append([st.label, tuned, *(fmt(st.best.ranking.get(key)) for key in keys), mse])
    s.add(md_table(rows))
    s.add(_verdict(studies, ranked, keys[0]))
    return s


def _verdict(studies: list[Study], ranked: list[Study], ndcg: str) -> str:
    label = ndcg.replace("_at_", "@")
    rating = [st for st in studies if st.rates]
    top = ranked[0]
    lines = [f"The ranking-best is **{top.label}** ({label} {fmt(top.best.ranking[ndcg])})."]
    if rating:
        mse_best = min(rating, key=lambda st: st.best.best_val_loss)
        if mse_best is top:
            lines.append(f"The MSE-best, {mse_best.label}, is also the ranking-best.")
        else:
            lines.append(
                f"The MSE-best, **{mse_best.label}** (val MSE {fmt(mse_best.best.best_val_loss)}), is **not**: it "
                f"scores {label} {fmt(mse_best.best.ranking.get(ndcg))}, place "
                f"{ranked.index(mse_best) + 1} of {len(ranked)}."
            )
    popular = next((st for st in ranked if st.variant == "popular"), None)
    if popular is not None:
        below = [st for st in ranked if st.rates and st.best.ranking[ndcg] < popular.best.ranking[ndcg]]
        if below:
            lines.append(
                f"{len(below)} of the {len(rating)} rating models rank below plain popularity "
                f"({fmt(popular.best.ranking[ndcg])}): a model fitted to observed ratings learns how much a user "
                "likes what they chose to watch, not what they will choose, so it scores obscure movies that few "
                "rated highly. A model trained to rank (BPR) learns the choice itself."
            )
    return " ".join(lines)


def evaluation_section(folds: pd.DataFrame | None, k: int) -> Section | None:
    s = Section("Repeated evaluation: folds, intervals and paired tests")
    if folds is None:
        s.add("Not run yet: `cfexp evaluate EXPERIMENT` retrains each study's best configuration on 5 folds.")
        return s
    n_folds = folds.fold.nunique()
    s.add(
        f"From `cfexp evaluate` (MLflow run `{folds.attrs.get('run_id', '?')}`): each study's best configuration "
        f"retrained on the same {n_folds} seeded folds of all the ratings (each fold validates once, the others "
        "train; no epoch is picked on the fold's own validation set). Mean ± sd over the folds, the 95% t "
        "interval, and, for each other study, a paired test against the best on the same folds."
    )
    for metric in ("mse", f"ndcg_at_{k}"):
        if metric not in folds or folds[metric].isna().all():
            continue
        label = "val MSE" if metric == "mse" else metric.replace("_at_", "@")
        table = evaluation_stats.summarise(folds, metric)
        comparisons = {c.other: c for c in evaluation_stats.compare_with_best(folds, metric)}
        rows = [["study", f"{label} mean ± sd", "95% interval", "lead of the best", "paired t p", "Wilcoxon p"]]
        for row in table.itertuples():
            c = comparisons.get(row.study)
            rows.append(
                [
                    row.study,
                    f"{fmt(row.mean)} ± {fmt(row.sd)}",
                    f"[{fmt(row.ci_low)}, {fmt(row.ci_high)}]",
                    f"{fmt(c.lead)} ± {fmt(c.lead_sd)}" if c else "(best)",
                    _p(c.t_p) if c else "",
                    _p(c.wilcoxon_p) if c else "",
                ]
            )
        s.add(f"**{label}**")
        s.add(md_table(rows))
        if comparisons:
            s.add(f"In a sentence: {next(iter(comparisons.values())).sentence()}.")
    s.add(
        f"With {n_folds} folds the Wilcoxon signed-rank test cannot go below p = {2 / 2**n_folds:.4f}; the paired "
        "t-test assumes the per-fold differences are roughly normal."
    )
    return s


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
