"""The report's honest comparisons: how every variant ranks (top-N, full ranking) and what `cfexp evaluate`'s
folds say about the leads, with intervals and paired tests."""

from __future__ import annotations

import math

import pandas as pd

from cfexp.metrics import stats as evaluation_stats
from cfexp.metrics.ranking import METRICS
from cfexp.report.collect import Study, yardstick
from cfexp.report.sections import Section, fmt, md_table


def ranking_section(studies: list[Study], k: int) -> Section | None:
    keys = [f"{name}_at_{k}" for name in METRICS]
    tested = any(st.final for st in studies)

    def reported(st: Study) -> float:
        """What the table reports and orders by: the final model's test NDCG, else the best trial's val NDCG."""
        return st.test(f"test_{keys[0]}") if tested else st.best.ranking.get(keys[0], math.nan)

    ranked = sorted(
        (st for st in studies if st.best and keys[0] in st.best.ranking and math.isfinite(reported(st))),
        key=lambda st: -reported(st),
    )
    if not ranked:
        return None
    s = Section("Ranking: top-10 by full ranking" if k == 10 else f"Ranking: top-{k} by full ranking")
    where = "test" if tested else "validation"
    s.add(
        f"Each study's {'final model' if tested else 'best trial'}, ranked for every user over every movie seen in "
        f"training{' (train + validation)' if tested else ''} that the user did not rate there; a movie is relevant "
        f"when the user rated it at least the relevance threshold in {where} "
        "(docs/evaluation.md). Users with no relevant movie are left out. "
        + ("Test figures come first; the validation NDCG beside them is what selected the trial." if tested else "")
    )
    if tested:
        rows = [["study", "tuned for", *(f"test {key.replace('_at_', '@')}" for key in keys), "val NDCG", "test MSE"]]
        for st in ranked:
            tuned = "val MSE" if st.objective == "val_loss" else st.objective.replace("_at_", "@")
            tests = [fmt(st.test(f"test_{key}")) for key in keys]
            rows.append([st.label, tuned, *tests, fmt(st.best.ranking.get(keys[0])), fmt(st.test("test_loss"))])
    else:
        rows = [["study", "tuned for", *(key.replace("_at_", "@") for key in keys), "best val MSE"]]
        for st in ranked:
            tuned = "val MSE" if st.objective == "val_loss" else st.objective.replace("_at_", "@")
            mse = fmt(st.best.best_val_loss) if st.rates else "-"
            rows.append([st.label, tuned, *(fmt(st.best.ranking.get(key)) for key in keys), mse])
    s.add(md_table(rows))
    s.add(_verdict(studies, ranked, keys[0], reported, where))
    return s


def _verdict(studies: list[Study], ranked: list[Study], ndcg: str, reported, where: str) -> str:
    label = f"{where} {ndcg.replace('_at_', '@')}"
    rating = [st for st in ranked if st.rates]
    top = ranked[0]
    lines = [f"The ranking-best is **{top.label}** ({label} {fmt(reported(top))})."]
    if rating:
        mse_best = min(rating, key=lambda st: st.best.best_val_loss)  # the champion: chosen on validation
        if mse_best is top:
            lines.append(f"The MSE-best, {mse_best.label}, is also the ranking-best.")
        else:
            lines.append(
                f"The MSE-best, **{mse_best.label}** (val MSE {fmt(mse_best.best.best_val_loss)}), is **not**: it "
                f"scores {label} {fmt(reported(mse_best))}, place {ranked.index(mse_best) + 1} of {len(ranked)}."
            )
    popular = yardstick(ranked, "popularity")
    if popular is not None:
        below = [st for st in rating if reported(st) < reported(popular)]
        if below:
            lines.append(
                f"{len(below)} of the {len(rating)} rating models rank below plain popularity "
                f"({fmt(reported(popular))}): a model fitted to observed ratings learns how much a user "
                "likes what they chose to watch, not what they will choose, so it scores obscure movies that few "
                "rated highly. A model trained on the choices themselves (BPR, iALS, EASE) learns what users pick."
            )
    floor = yardstick(ranked, "top-n")
    if floor is not None and floor is not top:
        above = ranked[: ranked.index(floor)]
        lines.append(
            f"Above the top-N floor, {floor.label} ({fmt(reported(floor))}): "
            + ", ".join(f"{st.label} ({fmt(reported(st))})" for st in above)
            + f"; the other {len(ranked) - len(above) - 1} rank below it."
        )
    elif floor is not None:
        lines.append(f"No study ranks above the top-N floor, {floor.label}: every other model is below it.")
    return " ".join(lines)


def evaluation_section(folds: pd.DataFrame | None, k: int) -> Section | None:
    s = Section("Repeated evaluation: folds, intervals and paired tests")
    if folds is None:
        s.add("Not run yet: `cfexp evaluate EXPERIMENT` retrains each study's best configuration on 5 folds.")
        return s
    n_folds = folds.fold.nunique()
    s.add(
        f"From `cfexp evaluate` (MLflow run `{folds.attrs.get('run_id', '?')}`): "
        + (
            "each study's search run again inside every fold (nested), "
            if folds.attrs.get("nested")
            else "each study's best configuration "
        )
        + f"retrained on the same {n_folds} seeded folds of train + validation (each fold scores once, the others "
        "train; no epoch is picked on the fold's own rows; the test split is left alone). Mean ± sd over the "
        "folds, the 95% t interval, and, for each other study, Nadeau and Bengio's corrected paired t-test "
        "against the best on the same folds (the folds' training sets overlap; the plain t-test would be "
        "overconfident)."
    )
    for metric in ("mse", f"ndcg_at_{k}"):
        if metric not in folds or folds[metric].isna().all():
            continue
        label = "fold MSE" if metric == "mse" else metric.replace("_at_", "@")
        table = evaluation_stats.summarise(folds, metric)
        comparisons = {c.other: c for c in evaluation_stats.compare_with_best(folds, metric)}
        rows = [["study", f"{label} mean ± sd", "95% interval", "lead of the best", "corrected t p", "Wilcoxon p"]]
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
    note = evaluation_stats.wilcoxon_note(n_folds)
    s.add((note + " " if note else "") + "The t-test assumes the per-fold differences are roughly normal.")
    if folds.attrs.get("test_lead"):
        s.add(f"The champion against the runner-up, {folds.attrs['test_lead']}.")
    if folds.attrs.get("test_ranking_lead"):
        s.add(f"The ranking champion against the top-N floor, {folds.attrs['test_ranking_lead']}.")
    return s


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"
