"""`make bench` and `make bench-scale`: cfexp beside the tools people use instead, measured in one run; each suite
writes its own part of BENCHMARKS.md (the other's part is kept).

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

from cfexp.bench import across as bench_across
from cfexp.bench import autoencoders as bench_autoencoders
from cfexp.bench import chaos_soak as bench_chaos
from cfexp.bench import floors as bench_floors
from cfexp.bench import item_models as bench_item_models
from cfexp.bench import peers as bench_peers
from cfexp.bench import protocols as bench_protocols
from cfexp.bench import scale as bench_scale
from cfexp.bench import scale_peers
from cfexp.bench.protocol import measure_baseline, measure_protocol
from cfexp.bench.report import write_benchmarks
from cfexp.bench.samplers import measure_samplers
from cfexp.bench.scale_sweep import measure_sweep as measure_scale_sweep
from cfexp.bench.sweeps import measure_sweep, measure_sweep_pair, measure_sweep_repeats, measure_sweep_workers
from cfexp.bench.training import measure_bpmf, measure_fast, measure_lesson, measure_surprise

SCALE = {  # in the order they run
    "scale-synth": bench_scale.measure_synth,
    "scale-load": bench_scale.measure_load,
    "scale-sgd": bench_scale.measure_sgd,
    "scale-gibbs": bench_scale.measure_gibbs,
    "scale-lenskit": scale_peers.measure_lenskit,
    "scale-surprise": scale_peers.measure_surprise,
    "scale-ials": bench_scale.measure_ials,
    "scale-implicit": scale_peers.measure_implicit,
    "scale-sweep": measure_scale_sweep,
}
GPU_STEPS = ("sgd", "gibbs", "ials", "sweep")
SUITES = {
    "default": {
        "lesson-cfexp": lambda args: measure_lesson("cfexp", args.device),
        "lesson-dataloader": lambda args: measure_lesson("dataloader", args.device),
        "fast": lambda args: measure_fast(args.device),
        "bpmf": lambda args: measure_bpmf(args.device),
        "surprise": lambda args: measure_surprise(args.device),
        "peers-cfexp": lambda args: bench_peers.measure_cfexp_baselines(args.device),
        "peers-lenskit": lambda args: bench_peers.measure_lenskit(args.device),
        "peers-cornac": lambda args: bench_peers.measure_cornac(args.device),
        "peers-implicit": lambda args: bench_peers.measure_implicit(args.device),
        "ranking-share": lambda args: bench_peers.measure_ranking_share(args.device),
        "sweep": lambda args: measure_sweep(args.device),
        "sweep-pair": lambda args: measure_sweep_pair(args.device),
        "sweep-workers": lambda args: measure_sweep_workers(args.device),
        "sweep-repeats": lambda args: measure_sweep_repeats(args.device),
    },
    "protocol": {
        "protocol-baseline": lambda args: measure_baseline(args.device),
        "protocol": lambda args: measure_protocol(args.device),
        "protocols": lambda args: bench_protocols.measure_protocols(args.device),
    },
    "samplers": {"samplers": lambda args: measure_samplers(args.device)},
    "across": {"across": lambda args: bench_across.measure_across(args.device)},
    "floors": {
        "floors-ials": lambda args: bench_floors.measure_ials(args.device),
        "floors-ease": lambda args: bench_floors.measure_ease(args.device),
        "floors-bayes": lambda args: bench_floors.measure_bayes(args.device),
        "floors-dlae": lambda args: bench_item_models.measure_dlae(args.device),
        "floors-itemknn": lambda args: bench_item_models.measure_itemknn(args.device),
        "floors-vaes": lambda args: bench_autoencoders.measure_vaes(args.device),
    },
    "scale": {name: (lambda args, f=f: f(args.data, args.device)) for name, f in SCALE.items()},
    # cfexp's own steps and the sweep with --device cuda (the peers are CPU-only)
    "gpu": {f"gpu-{name}": (lambda args, f=SCALE[f"scale-{name}"]: f(args.data, "cuda")) for name in GPU_STEPS},
    "chaos": {
        "chaos-soak": lambda args: bench_chaos.measure_soak(),
        "chaos-scenario": lambda args: bench_chaos.measure_scenario(),
    },
}
MEASURES = {name: measure for suite in SUITES.values() for name, measure in suite.items()}
SWEEPS = ("sweep", "sweep-pair", "sweep-workers", "sweep-repeats")
RESULTS = {suite: f"reports/bench-{suite}-results.json" for suite in SUITES}
RESULTS["default"] = "reports/bench-results.json"


def run_isolated(name: str, args) -> dict:
    """Run one measurement in a fresh interpreter; add its peak resident memory."""
    command = [sys.executable, "-m", "cfexp.bench", "--measure", name, "--device", args.device, "--data", args.data]
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
    packages = ("torch", "mlflow", "optuna", "pandas", "scikit-surprise", "lenskit", "cornac", "implicit")
    versions = ", ".join(f"{p} {_version(p)}" for p in packages)
    gpu = f"; GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {torch.get_num_threads()} torch threads{gpu}; Python {platform.python_version()}; {versions}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfexp.bench", description=__doc__)
    parser.add_argument("--suite", choices=sorted(SUITES), default="default")
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--skip-sweep", action="store_true", help="leave out the sweeps (about 15 minutes)")
    parser.add_argument("--measure", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N; the peers are CPU-only")
    parser.add_argument("--data", default="reports/scale/ml-25m.csv", help="the scale suite's synthetic ratings")
    parser.add_argument("--results", help="where the raw measurements go (default: reports/bench[-scale]-results.json)")
    parser.add_argument("--from-results", action="store_true", help="rewrite --out from --results, measuring nothing")
    args = parser.parse_args(argv)
    if args.measure:
        result = MEASURES[args.measure](args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    if args.suite == "gpu" and not args.from_results and not torch.cuda.is_available():
        print("make bench-gpu: no CUDA GPU on this machine, so nothing to measure (BENCHMARKS.md is unchanged)")
        return 0
    raw = Path(args.results or RESULTS[args.suite])
    if args.from_results:
        saved = json.loads(raw.read_text())
        write_benchmarks(Path(args.out), args.suite, saved["results"], saved["machine"], saved.get("when", ""))
        print(f"wrote {args.out} from {raw}")
        return 0
    names = [n for n in SUITES[args.suite] if not (args.skip_sweep and n in SWEEPS)]
    results, when = {}, time.strftime("%Y-%m-%d %H:%M")
    for name in names:
        print(f"measuring {name} ...", flush=True)
        results[name] = run_isolated(name, args)
        print(f"  {json.dumps(results[name])}", flush=True)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps({"machine": machine(), "when": when, "results": results}, indent=2))
    write_benchmarks(Path(args.out), args.suite, results, machine(), when)
    print(f"wrote {args.out}")
    return 0
