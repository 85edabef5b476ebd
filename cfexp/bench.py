"""`make bench`: cfexp beside the tools people use instead, measured in one run; writes BENCHMARKS.md.

Each measurement runs in its own process, so that its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from cfexp.bench_report import write_benchmarks
from cfexp.bench_sweeps import measure_sweep, measure_sweep_pair, measure_sweep_workers
from cfexp.bench_training import measure_bpmf, measure_fast, measure_lesson, measure_surprise

MEASURES = {
    "lesson-cfexp": lambda device: measure_lesson("cfexp", device),
    "lesson-dataloader": lambda device: measure_lesson("dataloader", device),
    "fast": measure_fast,
    "bpmf": measure_bpmf,
    "surprise": measure_surprise,
    "sweep": measure_sweep,
    "sweep-pair": measure_sweep_pair,
    "sweep-workers": measure_sweep_workers,
}
SWEEPS = ("sweep", "sweep-pair", "sweep-workers")


def run_isolated(name: str, device: str) -> dict:
    """Run one measurement in a fresh interpreter; add its peak resident memory."""
    command = [sys.executable, "-m", "cfexp.bench", "--measure", name, "--device", device]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {_version(p)}" for p in ("torch", "mlflow", "optuna", "scikit-surprise"))
    return f"{cpu}, {torch.get_num_threads()} torch threads; Python {platform.python_version()}; {versions}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfexp.bench", description=__doc__)
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--skip-sweep", action="store_true", help="leave out (c) and (e), the sweeps (about 5 minutes)")
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N; Surprise is CPU-only")
    parser.add_argument("--results", default="reports/bench-results.json", help="where the raw measurements go")
    parser.add_argument("--from-results", action="store_true", help="rewrite --out from --results, measuring nothing")
    args = parser.parse_args(argv)
    if args.measure:
        result = MEASURES[args.measure](args.device)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    raw = Path(args.results)
    if args.from_results:
        saved = json.loads(raw.read_text())
        write_benchmarks(Path(args.out), saved["results"], saved["machine"], saved.get("when", ""))
        print(f"wrote {args.out} from {raw}")
        return 0
    names = [n for n in MEASURES if not (args.skip_sweep and n in SWEEPS)]
    results, when = {}, time.strftime("%Y-%m-%d %H:%M")
    for name in names:
        print(f"measuring {name} ...", flush=True)
        results[name] = run_isolated(name, args.device)
        print(f"  {json.dumps(results[name])}", flush=True)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps({"machine": machine(), "when": when, "results": results}, indent=2))
    write_benchmarks(Path(args.out), results, machine(), when)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
