"""The report's leaderboard: every study, rating models in the order validation chose them, test figures first."""

from __future__ import annotations

import math

from cfexp.report.collect import Study, yardstick
from cfexp.report.sections import Section, fmt, md_table
from cfexp.variants.registry import get_variant


def leaderboard_section(studies: list[Study]) -> Section:
    s = Section("Variant leaderboard")
    rating = sorted((st for st in studies if st.rates), key=lambda st: st.best.best_val_loss)
    ranking_only = [st for st in studies if st.best and not st.rates]
    floor = yardstick(rating, "rating")
    floor_mse = floor.best.best_val_loss if floor else None
    ndcg = next((k for st in studies if st.best for k in st.best.ranking if k.startswith("ndcg_at_")), "ndcg_at_10")
    label = ndcg.replace("_at_", "@")
    tested = any(st.final for st in studies)
    reported = ["test MSE", "test RMSE", f"test {label}"] if tested else []
    header = [
        "study",
        "variant",
        "init",
        *reported,
        "val MSE",
        f"lift over {floor.label}" if floor else "lift",
        f"val {label}",
    ]
    rows = [[*header, "top-5 val mean ± sd", "done/pruned/failed"]]
    for st in rating + ranking_only + [st for st in studies if not st.best]:
        c = st.counts()
        best = st.best
        mean, sd = st.spread()
        mse = best.best_val_loss if best and st.rates else math.nan
        lift = f"{floor_mse - mse:+.4f}" if floor_mse is not None and math.isfinite(mse) else "-"
        tests = [fmt(st.test("test_loss")), fmt(st.test("test_rmse")), fmt(st.test(f"test_{ndcg}"))]
        rows.append(
            [
                st.label,
                st.variant,
                st.init if "init" not in get_variant(st.variant).unused_settings else "-",
                *(tests if tested else []),
                fmt(mse),
                lift,
                fmt(best.ranking.get(ndcg)) if best else "-",
                f"{fmt(mean)} ± {fmt(sd)}" if math.isfinite(mean) else "-",
                f"{c['complete']}/{c['pruned']}/{c['fail']}",
            ]
        )
    s.add(md_table(rows))
    if floor is not None:
        described = get_variant(floor.variant).description.rstrip(".")
        described = described[:1].lower() + described[1:]
        s.add(
            "Rows in the order validation chose them. Test figures come first: each study's best trial refit on "
            "train + validation and scored once on the test split; the validation figures beside them are what "
            f"selected it. Lift over {floor.label}: how much lower the val MSE is than the rating floor's, "
            f"{described}; what the model adds to it. Ranking-only variants (no MSE) "
            "are listed last."
        )
    if len(rating) >= 2:
        lead = rating[1].best.best_val_loss - rating[0].best.best_val_loss
        noise = max(rating[0].spread()[1], rating[1].spread()[1])
        verdict = "within the noise" if lead <= noise else "larger than the spread of either top-5"
        s.add(
            f"**{rating[0].label}** leads **{rating[1].label}** by {fmt(lead)} val MSE; the top-5 trials of "
            f"those two spread by up to {fmt(noise)} (standard deviation), so the lead is {verdict}. "
            "`cfexp evaluate` puts intervals and paired tests on it (below)."
        )
    return s
