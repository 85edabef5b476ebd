"""`make bench`'s sampler section: which sampler finds good configurations within the budgets a sweep has.

Two studies of experiments/variants.toml (bpmf and dot_bias_sigmoid), 20 trials each, with every candidate of
cfexp.search.samplers on several sweep seeds, on the validation split only (no test row is loaded), without
pruning. Each configuration is trained once and its val MSE reused wherever another sampler draws the same point
(the fits are seeded, so the value is the same). The figure is the median over seeds of the best val MSE after 5,
10 and 20 trials; the best point each study found is printed too, for the experiment's warm starts.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import optuna

from cfexp.config.experiment import load_experiment
from cfexp.config.sweep_table import DEFAULT_SAMPLER
from cfexp.data.dataset import load_dataset
from cfexp.search import samplers
from cfexp.search.space import search_space, suggest, with_params
from cfexp.variants import runner

optuna.logging.set_verbosity(optuna.logging.WARNING)
EXPERIMENT = "experiments/variants.toml"
STUDIES = ("bpmf", "dot_bias_sigmoid")
TRIALS = 20
SEEDS = (0, 1, 2)
CHECKPOINTS = (5, 10, 20)
STARTUP = samplers.startup_trials(8)  # as the default sweep's budgets (3 to 8 trials) set it
# random first: its draws are the other samplers' random starts (the same per-trial seeds), so they are reused
KINDS = ("random", "tpe-optuna", "tpe", "gp", "qmc-tpe")


def measure_samplers(device: str = "cpu") -> dict:
    """Both studies side by side, each in a process of its own on one CPU thread (the machine has two cores)."""
    started = time.perf_counter()
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "cfexp.bench.samplers", name, device], stdout=subprocess.PIPE, text=True
        )
        for name in STUDIES
    }
    found: dict = {"startup_trials": STARTUP, "trials": TRIALS, "seeds": list(SEEDS), "studies": {}}
    for name, proc in procs.items():
        out, _ = proc.communicate()
        if proc.returncode != 0:
            return {"error": f"the {name} study's process exited with {proc.returncode}"}
        found["studies"][name] = json.loads(out.strip().splitlines()[-1])
    found["seconds"] = time.perf_counter() - started
    return found


def measure_study(name: str, device: str = "cpu", kinds=KINDS, seeds=SEEDS, trials: int = TRIALS) -> dict:
    """One study run by every sampler in `kinds` on every seed; each configuration trained once."""
    experiment = load_experiment(EXPERIMENT)
    dataset = load_dataset(experiment.data)
    tensors = runner.to_device(dataset.ratings, dataset.split.search(), device)
    spec = next(spec for spec in experiment.sweep.studies if spec.name == name)
    space = search_space(spec)
    cache: dict[tuple, float] = {}

    def objective(params: dict) -> float:
        key = tuple(sorted(params.items()))
        if key not in cache:
            run = runner.resolved(with_params(spec.run, params), tensors)
            _, result = runner.fit_run(run, tensors)
            cache[key] = result.best_val_loss if result.status != "diverged" else float("inf")
            print(f"{name} fit {len(cache)}: {cache[key]:.4f} in {result.seconds:.1f} s", file=sys.stderr, flush=True)
        return cache[key]

    curves = {kind: [_curve(kind, name, seed, space, objective, trials) for seed in seeds] for kind in kinds}
    best = min(cache, key=cache.get)
    return {
        "curves": curves,
        "median": {kind: _medians(c) for kind, c in curves.items()},
        "fits": len(cache),
        "best_params": dict(best),
        "best_val_loss": cache[best],
    }


def _curve(kind: str, name: str, seed: int, space, objective, trials: int) -> list[float]:
    """Best-so-far val MSE after each trial of one study run by `kind` with sweep seed `seed`."""
    study_seed = samplers.study_seed(seed, f"variants/{name}")
    study = optuna.create_study(direction="minimize")
    best, curve = float("inf"), []
    for number in range(trials):
        done = samplers.finished(kind, study.get_trials(deepcopy=False))
        study.sampler = samplers.make_sampler(kind, study_seed, study_seed + number, STARTUP, done)
        trial = study.ask()
        value = objective(suggest(trial, space))
        study.tell(trial, value)
        best = min(best, value)
        curve.append(best)
    return curve


def _medians(curves: list[list[float]]) -> dict[str, float]:
    return {str(n): statistics.median(c[n - 1] for c in curves) for n in CHECKPOINTS if n <= len(curves[0])}


def samplers_section(r: dict) -> list[str]:
    """BENCHMARKS.md's part for the sampler measurement, with the default it supports."""
    found = r.get("samplers", {})
    lines = ["## make bench: samplers (`python -m cfexp.bench --suite samplers`)", ""]
    if "error" in found or not found.get("studies"):
        return [*lines, f"Not measured: {found.get('error', 'no result')}.", ""]
    seeds, trials = found["seeds"], found["trials"]
    lines += [
        f"Two studies of `{EXPERIMENT}`, {trials} trials each, run by every candidate sampler with sweep seeds "
        f"{', '.join(map(str, seeds))}, on the validation split only (no test row loaded), without pruning. "
        f"Model-based samplers start with {found['startup_trials']} random trials, as the default sweep's budgets "
        "(3 to 8 trials) set it (`cfexp.search.samplers.startup_trials`); `tpe-optuna` is TPE at Optuna's defaults "
        "(10 random trials first); `qmc-tpe` draws its start from a scrambled Sobol sequence, then TPE. Each "
        "configuration is trained once and reused wherever another sampler drew it (the fits are seeded). Figure: "
        "the median over seeds of the best val MSE after 5, 10 and 20 trials (lower is better).",
        "",
    ]
    kinds = list(next(iter(found["studies"].values()))["median"])
    for name, study in found["studies"].items():
        lines += [f"**{name}** ({study['fits']} fits)", ""]
        lines += ["| sampler | " + " | ".join(f"after {n}" for n in CHECKPOINTS) + " |"]
        lines += ["|---|" + "---|" * len(CHECKPOINTS)]
        for kind in kinds:
            medians = study["median"][kind]
            mark = " (default)" if kind == DEFAULT_SAMPLER else ""
            lines.append(f"| {kind}{mark} | " + " | ".join(f"{medians.get(str(n), 0):.4f}" for n in CHECKPOINTS) + " |")
        params = ", ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in study["best_params"].items()
        )
        lines += ["", f"Best point found: {params} (val MSE {study['best_val_loss']:.4f}).", ""]
    ranks = _mean_ranks(found, kinds)
    order = sorted(ranks, key=ranks.get)
    first = CHECKPOINTS[0]
    leaders = {
        name: min(kinds, key=lambda k, s=study: s["median"][k].get(str(first), float("inf")))
        for name, study in found["studies"].items()
    }
    lines += [
        f"Best after {first} trials, where the default sweep's budgets (3 to 8) end: "
        + ", ".join(f"{kind} for {name}" for name, kind in leaders.items())
        + ".",
        "",
    ]
    lines += [
        "Mean rank of each sampler over both studies and the three checkpoints (1 is best): "
        + ", ".join(f"{k} {ranks[k]:.2f}" for k in order)
        + f". The default is `{DEFAULT_SAMPLER}`"
        + (" (the best mean rank)." if order[0] == DEFAULT_SAMPLER else f"; the best mean rank is {order[0]}'s."),
        f"Measured in {found['seconds']:.0f} s.",
        "",
    ]
    return lines


def _mean_ranks(found: dict, kinds: list[str]) -> dict[str, float]:
    ranks = {kind: [] for kind in kinds}
    for study in found["studies"].values():
        for n in CHECKPOINTS:
            values = sorted((study["median"][k].get(str(n), float("inf")), k) for k in kinds)
            for place, (_, kind) in enumerate(values, start=1):
                ranks[kind].append(place)
    return {k: statistics.fmean(v) for k, v in ranks.items()}


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    print(json.dumps(measure_study(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "cpu")))
