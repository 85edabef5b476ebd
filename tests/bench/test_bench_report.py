"""BENCHMARKS.md's workers section: the verdict is the median over the measured pairs, beside the ceiling the
trials' summed seconds set."""

import pytest
import torch

from cfexp.bench.default_report import _sweep_workers
from cfexp.bench.report import write_benchmarks
from cfexp.bench.training import SWEEP_EXPERIMENT
from cfexp.config.experiment import load_experiment


def _run(workers: int, wall: float, trial_seconds: float, running: int = 0) -> dict:
    experiment = load_experiment(SWEEP_EXPERIMENT)
    budgets = {f"{experiment.name}/{s.name}": s.trials or experiment.sweep.trials for s in experiment.sweep.studies}
    return {
        "workers": workers,
        "wall_seconds": wall,
        "cpu_seconds": 2 * wall,
        "cpu_seconds_per_trial": 2 * wall / 36,
        "trials": 36,
        "trials_per_process": [36] if workers == 1 else [16, 20],
        "best_val_mse": 0.7308,
        "studies": budgets,
        "best_per_study": {"variants/bpmf": [0.7308, {"n_factors": 20}]},
        "running": running,
        "trial_seconds": trial_seconds,
    }


def _text(one, two, repeats=()) -> str:
    return "\n".join(_sweep_workers(one, two, list(repeats)))


def test_the_verdict_is_the_median_of_the_pairs_and_the_ceiling_is_stated():
    repeats = [
        {"first": "two", "one": _run(1, 131.2, 121.7), "two": _run(2, 110.8, 194.0)},
        {"first": "one", "one": _run(1, 157.0, 145.8), "two": _run(2, 112.2, 199.3)},
    ]
    text = _text(_run(1, 149.3, 139.6), _run(2, 110.0, 193.8), repeats)
    assert "Speed-up 1.36×" in text
    assert "| 2 | two first | 131.2 s (121.7 s) | 110.8 s (194.0 s; 16, 20 trials) | 1.18× |" in text
    assert "at most 1.44× as fast" in text  # 2 × 139.6 / 193.8
    assert "the median of 3 pairs: 1.36×. Target: ≥ 1.3×, nothing lost, the same table: met." in text


def test_one_slow_pair_alone_is_not_met():
    text = _text(_run(1, 130.0, 120.0), _run(2, 110.0, 190.0))
    assert "the median of 1 pair: 1.18×" in text
    assert text.rstrip().endswith("**not met**.")


def test_a_trial_left_running_in_any_pair_fails_the_section():
    repeats = [{"first": "two", "one": _run(1, 150.0, 140.0), "two": _run(2, 100.0, 190.0, running=1)}]
    text = _text(_run(1, 150.0, 140.0), _run(2, 100.0, 190.0), repeats)
    assert "nothing left running: **no**" in text
    assert text.rstrip().endswith("**not met**.")


def test_a_part_written_to_another_file_leaves_the_pages_alone(tmp_path):
    """`--out` elsewhere writes that file; README.md and docs/ quote the project's BENCHMARKS.md only."""
    out = tmp_path / "scratch.md"
    write_benchmarks(out, "chaos", {}, "a machine", "today")
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "<!-- suite: chaos -->" in text and "Machine: a machine." in text
    assert not (tmp_path / "BENCHMARKS.md").exists()


def test_bench_gpu_without_a_gpu_says_so_in_one_line_and_changes_nothing(tmp_path, capsys):
    from cfexp.bench.run import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: make bench-gpu would measure")
    out = tmp_path / "BENCHMARKS.md"
    out.write_text("kept\n")
    assert main(["--suite", "gpu", "--out", str(out)]) == 0
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "no CUDA GPU" in said[0]
    assert out.read_text() == "kept\n"


def test_scale_part_states_each_aim_met_or_not():
    """The scale part's verdicts come from the measurements: a ranking pass 2.5× its floor is not met, 1.5× is."""
    from cfexp.bench.scale_report import _setup_row

    slow = {"epoch_seconds": 2.0, "setup_seconds": 1.0, "setup_again_seconds": 0.1}
    assert _setup_row("x", {**slow, "ranking_seconds": 5.0, "ranking_floor_seconds": 2.0}).endswith("**not met** |")
    fast = _setup_row("x", {**slow, "ranking_seconds": 3.0, "ranking_floor_seconds": 2.0})
    assert fast.endswith("| 1.50× | met |") and "| met | 3.0 |" in fast
    late = _setup_row("x", {**slow, "setup_seconds": 3.0, "ranking_seconds": 3.0, "ranking_floor_seconds": 2.0})
    assert "| **not met** | 3.0 |" in late
