"""`make bench`'s protocol table: the default sweep's test figures under the random split, a global time cut
(`temporal`) and each user's latest ratings (`user-last`), side by side, and which of its conclusions change.

The random sweep is the protocol part's own (`cfexp.bench.protocol`); the two others are the same command with
`--set data.split=...`, each on fresh stores. A conclusion is read off each sweep's table the same way: the champion
(lowest validation MSE), the best ranker (highest test NDCG@10) and the order of the lesson's models by test MSE.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cfexp.bench.protocol import WORKERS, shown, timed
from cfexp.bench.training import SWEEP_EXPERIMENT

SPLITS = ("random", "temporal", "user-last")
LESSON = ("dot", "dot_bias", "dot_bias_sigmoid", "dot_bias_sigmoid-const0.01", "dot_bias_sigmoid-unif0.05")
KEPT = ("study", "variant", "best_val_loss", "ndcg_at_10", "test_loss", "test_rmse", "test_ndcg_at_10")


def sweep_under(split: str, device: str = "cpu") -> dict:
    """`make sweep` under another split, on fresh stores: its wall, studies, champion and cold rows."""
    with tempfile.TemporaryDirectory() as tmp:
        command = ["sweep", str(SWEEP_EXPERIMENT), *WORKERS, "--quiet", "--device", device, "--summary", "s.json"]
        wall, error = timed([*command, "--set", f"data.split={split}"], tmp)
        if error:
            return {"error": error}
        return digest(json.loads((Path(tmp) / "s.json").read_text()), wall)


def digest(summary: dict, wall: float) -> dict:
    """What the table needs of a sweep's --summary document."""
    return {
        "wall": wall,
        "studies": [{k: row.get(k) for k in KEPT} for row in summary["studies"]],
        "champion": (summary.get("best") or {}).get("study"),
        "split": summary["dataset"].get("split"),
        "protocol": summary["dataset"].get("protocol", {}),
    }


def measure_protocols(device: str = "cpu") -> dict:
    return {split: sweep_under(split, device) for split in SPLITS[1:]}


def conclusions(sweep: dict) -> dict[str, str]:
    """The default sweep's conclusions, read off one sweep's table."""
    studies = [{**row, "name": row["study"].split("/", 1)[1]} for row in sweep["studies"]]
    rankers = [row for row in studies if row.get("test_ndcg_at_10") is not None]
    lesson = sorted(
        (row for row in studies if row["name"] in LESSON and row.get("test_loss") is not None),
        key=lambda row: row["test_loss"],
    )
    return {
        "champion (lowest val MSE)": (sweep.get("champion") or "-").split("/", 1)[-1],
        "best ranker (test NDCG@10)": max(rankers, key=lambda row: row["test_ndcg_at_10"])["name"] if rankers else "-",
        "order of the lesson's models by test MSE": " < ".join(row["name"] for row in lesson) or "-",
    }


def protocols_section(r: dict) -> list[str]:
    """BENCHMARKS.md's protocol table, under the protocol part."""
    sweeps = {"random": r.get("protocol", {}).get("sweep"), **r.get("protocols", {})}
    lines = ["### Under three protocols: random, temporal, user-last", ""]
    missing = [s for s in SPLITS if not sweeps.get(s) or "error" in sweeps[s]]
    if missing:
        why = "; ".join(f"{s}: {(sweeps.get(s) or {}).get('error', 'no result')}" for s in missing)
        return [*lines, f"Not measured: {why}.", ""]
    lines += [
        f"The default sweep (`cfexp sweep {shown(SWEEP_EXPERIMENT)} "
        f"{' '.join(WORKERS)}`) under each split, on fresh stores (`--set data.split=temporal`, "
        "`--set data.split=user-last`): each study's final model on its own test split, MSE / NDCG@10.",
        "",
        "| study | " + " | ".join(SPLITS) + " |",
        "|---|" + "---|" * len(SPLITS),
    ]
    by_split = {s: {row["study"].split("/", 1)[1]: row for row in sweeps[s]["studies"]} for s in SPLITS}
    for name in by_split["random"]:
        cells = []
        for split in SPLITS:
            row = by_split[split].get(name, {})
            mse, ndcg = row.get("test_loss"), row.get("test_ndcg_at_10")
            cells.append(f"{'-' if mse is None else f'{mse:.4f}'} / {'-' if ndcg is None else f'{ndcg:.4f}'}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
    for label, values in (
        ("test ratings", [f"{sweeps[s]['split']['test']:,}" for s in SPLITS]),
        ("cold test rows (no train + validation row of user or movie)", [_cold(sweeps[s]) for s in SPLITS]),
        ("sweep wall (whole command)", [f"{sweeps[s]['wall']:.1f} s" for s in SPLITS]),
    ):
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    found = {s: conclusions(sweeps[s]) for s in SPLITS}
    for what in found["random"]:
        values = [found[s][what] for s in SPLITS]
        lines.append(f"| {what} | " + " | ".join(values) + " |")
    lines.append("")
    for what in found["random"]:
        values = {s: found[s][what] for s in SPLITS}
        changed = [s for s in SPLITS[1:] if values[s] != values["random"]]
        verdict = f"changes under {' and '.join(changed)}" if changed else "holds under all three"
        lines.append(f"- The {what}: {verdict}.")
    return [*lines, ""]


def _cold(sweep: dict) -> str:
    cold = sweep.get("protocol", {}).get("cold", {}).get("test")
    if not cold:
        return "-"
    return f"{cold['rows']:,} ({cold['users']:,} of {cold['of_users']:,} users)"
