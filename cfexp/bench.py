"""`make bench`: cfexp's trainer against a plain DataLoader loop, measured side by side; writes BENCHMARKS.md."""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from cfexp import data, runner, train
from cfexp.config import load_experiment

SEED_EXPERIMENT = Path(__file__).parents[1] / "experiments" / "seed_reproduction.toml"


def dataloader_fit(model, part: data.TensorPart, val: data.TensorPart, run) -> tuple[list[float], float]:
    """The plain PyTorch way: a shuffled DataLoader over a TensorDataset, torch.optim.SGD, per-phase lr."""
    loader = DataLoader(TensorDataset(part.users, part.movies, part.ratings), batch_size=run.batch_size, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=run.lr, momentum=run.momentum, weight_decay=run.weight_decay)
    seconds = []
    for epochs, lr in run.phases:
        for group in optimizer.param_groups:
            group["lr"] = lr
        for _ in range(epochs):
            started = time.perf_counter()
            for users, movies, ratings in loader:
                loss = F.mse_loss(model(users, movies), ratings)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            train.evaluate(model, val)
            seconds.append(time.perf_counter() - started)
    return seconds, train.evaluate(model, val)["mse"]


def lesson_schedule() -> tuple[list[str], list[dict]]:
    """(a) The lesson's two runs at batch size 64: seconds per epoch and final val MSE, both loops."""
    experiment = load_experiment(SEED_EXPERIMENT, ["device='cpu'"])
    ratings = data.load_ratings(experiment.data.ratings)
    tensors = runner.to_device(ratings, data.split_rows(len(ratings.frame)), "cpu")
    rows = []
    for run in experiment.runs:
        torch.manual_seed(run.seed)
        baseline_seconds, baseline_mse = dataloader_fit(runner.build_for(run, tensors), tensors.train, tensors.val, run)
        _, result = runner.fit_run(run, tensors)
        ours = statistics.median(h["seconds"] for h in result.history)
        theirs = statistics.median(baseline_seconds)
        rows.append(
            {
                "run": run.name,
                "cfexp s/epoch": ours,
                "DataLoader s/epoch": theirs,
                "speed-up": theirs / ours,
                "cfexp val MSE": result.val_loss,
                "DataLoader val MSE": baseline_mse,
            }
        )
        print(f"  {run.name}: cfexp {ours:.3f} s/epoch, DataLoader {theirs:.3f} s/epoch ({theirs / ours:.1f}x)")
    return ["a. The lesson's schedule (SGD, momentum 0.9, batch 64, 3 epochs at lr 0.1 then 3 at 0.01)"], rows


def markdown_table(rows: list[dict]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cfexp.bench", description=__doc__)
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    sections = []
    for measure in (lesson_schedule,):
        title, rows = measure()
        sections.append(f"## {title[0]}\n\n{markdown_table(rows)}\n")
    text = (
        "# Benchmarks\n\nWritten by `make bench` (`python -m cfexp.bench`); every figure in a table comes from the "
        "same run, on the same machine, so that ratios are fair on a noisy machine. Times are medians over epochs "
        f"and include the validation pass.\n\nMachine: {machine()}\n\n" + "\n".join(sections)
    )
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
