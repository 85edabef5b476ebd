"""`make bench`'s protocol part: what the honest protocol costs and reports on the default sweep.

In one fresh folder: the default sweep as `make sweep` runs it (`cfexp sweep experiments/variants.toml --workers 2`:
its wall as a whole command, and the share of its final fits), the champion's test figures beside the peers' on
the same rows, then `cfexp evaluate` and `cfexp evaluate --nested` on that sweep (their walls, and what they
report).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cfexp.bench.training import SWEEP_EXPERIMENT

SWEEP_TARGET = 150.0  # seconds for `make sweep` with its final fits (this project's 2-core CPU)
WORKERS = ["--workers", "2"]  # as `make sweep` runs it
CHAMPION_TARGET = 0.745  # the champion's test MSE on the lesson's 20%
PEERS = {  # measured and tuned on the same rows (BENCHMARKS.md, default part, section g; Surprise: section b)
    "LensKit biased ALS (100 features, reg 0.1)": 0.7626,
    "Cornac MF (k 100, λ 0.1, 100 iterations)": 0.7710,
    "Surprise SVD, tuned by Optuna for 60 trials": 0.7601,
}


def shown(path: Path) -> Path:
    """The experiment as the reader types it: relative to the project (experiments/variants.toml)."""
    return path.relative_to(path.parents[1])


def timed(command: list[str], folder: str) -> tuple[float, str | None]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cfexp.cli", *command], cwd=folder, capture_output=True, text=True)
    error = (proc.stderr.strip().splitlines() or ["failed"])[-1] if proc.returncode else None
    return time.perf_counter() - started, error


# The same sweep under the protocol before this one: the lesson's split as validation, no test split and so no
# final fits, and Optuna's default TPE (its 10 random trials cover every default budget).
BASELINE = ["--set", "data.test_pct=0.0", "--set", "data.val_pct=0.2", "--set", "sweep.sampler='tpe-optuna'"]


def measure_baseline(device: str = "cpu") -> dict:
    """The baseline sweep's wall, as a whole command on fresh stores."""
    with tempfile.TemporaryDirectory() as tmp:
        command = ["sweep", str(SWEEP_EXPERIMENT), *WORKERS, "--quiet", "--device", device, "--summary", "s.json"]
        command += BASELINE
        wall, error = timed(command, tmp)
        if error:
            return {"error": error}
        return {"wall": wall, "seconds": json.loads((Path(tmp) / "s.json").read_text())["seconds"]}


def measure_protocol(device: str = "cpu") -> dict:
    experiment = str(SWEEP_EXPERIMENT)
    found: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        command = ["sweep", experiment, *WORKERS, "--quiet", "--device", device, "--summary", "sweep.json"]
        wall, error = timed(command, tmp)
        if error:
            return {"error": error}
        summary = json.loads((Path(tmp) / "sweep.json").read_text())
        found["sweep"] = {
            "wall": wall,
            "seconds": summary["seconds"],
            "final_seconds": summary["final_seconds"],
            "best": {k: summary["best"].get(k) for k in ("study", "best_val_loss", "test_loss", "test_rmse")},
            "studies": [
                {k: v for k, v in row.items() if k.startswith(("test_", "best_val", "study", "ndcg"))}
                for row in summary["studies"]
            ],
            "champion": summary["best"].get("study"),
            "split": summary["dataset"].get("split"),
            "protocol": summary["dataset"].get("protocol", {}),
        }
        for key, extra in (("evaluate", []), ("evaluate_nested", ["--nested"])):
            command = ["evaluate", experiment, "--quiet", "--device", device, "--summary", f"{key}.json", *extra]
            wall, error = timed(command, tmp)
            if error:
                found[key] = {"error": error}
                continue
            evaluation = json.loads((Path(tmp) / f"{key}.json").read_text())
            found[key] = {"wall": wall, "test_lead": evaluation.get("test_lead")}
            found[key]["test_ranking_lead"] = evaluation.get("test_ranking_lead")
            found[key]["comparisons"] = evaluation.get("comparisons", [])
    return found


def protocol_section(r: dict) -> list[str]:
    """BENCHMARKS.md's protocol part."""
    found = r.get("protocol", {})
    lines = ["## make bench: the protocol (`python -m cfexp.bench --suite protocol`)", ""]
    if "error" in found or "sweep" not in found:
        return [*lines, f"Not measured: {found.get('error', 'no result')}.", ""]
    sweep = found["sweep"]
    best = sweep["best"]
    share = sweep["final_seconds"] / sweep["seconds"] if sweep["seconds"] else 0.0
    baseline = r.get("protocol-baseline", {})
    lines += [
        f"`cfexp sweep {shown(SWEEP_EXPERIMENT)} {' '.join(WORKERS)}` (`make "
        f"sweep`) on fresh stores, {len(sweep['studies'])} studies, as a whole "
        f"command: **{sweep['wall']:.1f} s**; the final fits (each study's best trial refit on train + validation, "
        f"scored once on test) took {sweep['final_seconds']:.1f} s of its {sweep['seconds']:.1f} s ({share:.1%}).",
        "",
    ]
    if "wall" in baseline:
        ratio = sweep["wall"] / baseline["wall"]
        lines += [
            "Baseline, measured by the same suite (`protocol-baseline`): the same command under the previous "
            "protocol (the lesson's split as validation, no test split and no final fits, Optuna's default TPE; "
            f"`{' '.join(BASELINE)}`): **{baseline['wall']:.1f} s**; the protocol costs **{ratio:.2f}×** it.",
            "",
        ]
    verdict = "met" if sweep["wall"] <= SWEEP_TARGET else "**not met**"
    lines += [f"Target: `make sweep` in ≤ {SWEEP_TARGET:.0f} s on this machine: {verdict}.", ""]
    lines += [
        "Each study: its final model's test figures (reported), then the validation figures that selected it.",
        "",
        "| study | test MSE | test RMSE | test NDCG@10 | val MSE | val NDCG@10 |",
        "|---|---|---|---|---|---|",
    ]
    for row in sweep["studies"]:
        cells = [row.get(k) for k in ("test_loss", "test_rmse", "test_ndcg_at_10", "best_val_loss", "ndcg_at_10")]
        lines.append(f"| {row['study']} | " + " | ".join("-" if v is None else f"{v:.4f}" for v in cells) + " |")
    test = best.get("test_loss")
    lines += [
        "",
        f"The champion (lowest val MSE) is {best['study']}: test MSE **{test:.4f}** on the lesson's 20% "
        f"(target ≤ {CHAMPION_TARGET}: {'met' if test is not None and test <= CHAMPION_TARGET else '**not met**'}). "
        "Peers on the same rows, measured and tuned on them (so their figures flatter them): "
        + "; ".join(f"{name} {value:.4f}" for name, value in PEERS.items())
        + ".",
        "",
    ]
    for key, label in (("evaluate", "`cfexp evaluate`"), ("evaluate_nested", "`cfexp evaluate --nested`")):
        part = found.get(key, {})
        if "error" in part or not part:
            lines += [f"{label}: not measured: {part.get('error', 'no result')}.", ""]
            continue
        lead = part.get("test_lead") or {}
        lines.append(
            f"{label} (5 folds of train + validation, {len(sweep['studies'])} studies): **{part['wall']:.1f} s**."
        )
        if lead:
            lines.append(
                f"Champion against runner-up on the test split: {lead['champion']} against {lead['runner_up']}, "
                f"lead {lead['lead']:.4f} MSE, 95% bootstrap interval over {lead['users']} test users "
                f"[{lead['low']:.4f}, {lead['high']:.4f}], paired permutation test "
                f"p = {lead.get('p', float('nan')):.3g}."
            )
        ranking = part.get("test_ranking_lead") or {}
        if ranking:
            lines.append(
                f"Ranking champion against the top-N floor on the test split: {ranking['champion']} against "
                f"{ranking['runner_up']}, lead {ranking['lead']:.4f} {ranking['metric']}, 95% bootstrap interval over "
                f"{ranking['users']} ranked test users [{ranking['low']:.4f}, {ranking['high']:.4f}], paired "
                f"permutation test p = {ranking['p']:.3g}."
            )
        runner_up = [c for c in part.get("comparisons", []) if c["metric"] == "mse"][:1]
        lines += [f"On the folds, by MSE: {c['sentence']}." for c in runner_up]
        lines.append("")
    return lines
