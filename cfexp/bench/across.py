"""`make benchmark`: `experiments/variants.toml` on the embedded data under `random`, `temporal` and `user-last`, in
this project's stores (`cfexp sweep ... --across data.split=...`, then `cfexp report ... --across ...`), and its
part of BENCHMARKS.md: the wall of both commands against the sum of the settings' own sweeps, the matrices of
ranks, Friedman's verdicts and which conclusions hold, all read from what the commands wrote.

Run again, it resumes: the settings already swept are left as they are, and the part says the wall is not a fresh
one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from cfexp.bench.protocol import WORKERS, shown
from cfexp.bench.training import SWEEP_EXPERIMENT

SPLITS = "data.split=random,temporal,user-last"
AIM = 1.10  # the whole benchmark within the sum of its settings' sweeps plus 10%
SUMMARY = Path("reports", "benchmark-sweep.json")


def _cfexp(command: list[str]) -> tuple[float, str | None]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cfexp.cli", *command], capture_output=True, text=True)
    error = (done.stderr.strip().splitlines() or ["failed"])[-1] if done.returncode else None
    return time.perf_counter() - started, error


def measure_across(device: str = "cpu") -> dict:
    fresh = not Path("mlruns", "optuna-journal.log").exists()
    experiment = str(shown(SWEEP_EXPERIMENT))
    sweep = ["sweep", experiment, "--across", SPLITS, *WORKERS, "--quiet", "--device", device, "--summary"]
    sweep_wall, error = _cfexp([*sweep, str(SUMMARY)])
    if error:
        return {"error": error}
    report_wall, error = _cfexp(["report", experiment, "--across", SPLITS])
    if error:
        return {"error": error}
    summary = json.loads(SUMMARY.read_text())
    folder = Path("reports", f"{summary['experiment']}-across")
    text = (folder / "report.md").read_text()
    return {
        "fresh": fresh,
        "sweep_wall": sweep_wall,
        "report_wall": report_wall,
        "settings": [{k: s[k] for k in ("setting", "experiment", "wall")} for s in summary["settings"]],
        "folder": str(folder),
        "ranks": {slug: pd.read_csv(folder / f"ranks_{slug}.csv").to_dict("list") for slug in ("mse", "ndcg")},
        "matrix": pd.read_csv(folder / "matrix.csv")[["setting", "study", "test_mse", "test_ndcg"]].to_dict("list"),
        "friedman": re.findall(r"^(Friedman's test.*)$", text, re.M),
        "conclusions": re.findall(r"^- (.* holds in .*)$", text, re.M),
    }


def across_section(r: dict) -> list[str]:
    found = r.get("across", {})
    lines = ["## make benchmark: one experiment across settings (`python -m cfexp.bench --suite across`)", ""]
    if "error" in found or "settings" not in found:
        return [*lines, f"Not measured: {found.get('error', 'no result')}.", ""]
    walls = sum(s["wall"] for s in found["settings"])
    total = found["sweep_wall"] + found["report_wall"]
    verdict = "met" if total <= AIM * walls else "**not met**"
    fresh = "on fresh stores" if found["fresh"] else "**resumed** on stores that held earlier sweeps (not a fresh wall)"
    each = ", ".join(f"{s['setting']} {s['wall']:.1f} s" for s in found["settings"])
    lines += [
        f"`cfexp sweep {shown(SWEEP_EXPERIMENT)} --across {SPLITS} {' '.join(WORKERS)}`, then `cfexp report "
        f"{shown(SWEEP_EXPERIMENT)} --across {SPLITS}` ({found['folder']}/index.html and an MLflow parent run), "
        f"{fresh}: **{total:.1f} s** in all ({found['sweep_wall']:.1f} s sweeping, {found['report_wall']:.1f} s "
        f"reporting). The settings' own sweeps took {walls:.1f} s "
        f"({each}): the whole is "
        f"**{total / walls:.2f}×** their sum. Aim: at most {AIM:.2f}×: {verdict}.",
        "",
    ]
    figures = pd.DataFrame(found["matrix"]).set_index(["study", "setting"])
    for slug, words in (("mse", "test MSE"), ("ndcg", "test NDCG@10")):
        ranks = pd.DataFrame(found["ranks"][slug]).set_index("study")
        settings = [c for c in ranks.columns if c != "mean rank"]
        lines += [f"Each study's {words} in each setting, its rank there (1: the best) and its mean rank:", ""]
        lines += ["| study | " + " | ".join(settings) + " | mean rank |", "|---|" + "---|" * (len(settings) + 1)]
        for study, row in ranks.iterrows():
            cells = [f"{figures.loc[(study, s), f'test_{slug}']:.4f} ({row[s]:g})" for s in settings]
            lines.append(f"| {study} | " + " | ".join(cells) + f" | {row['mean rank']:.2f} |")
        lines.append("")
    lines += [*found["friedman"], "", *(f"- {c}" for c in found["conclusions"]), ""]
    return lines
