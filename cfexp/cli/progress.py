"""What a person watches in the terminal: a live progress bar per run, epoch tables and a comparison table."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import pandas as pd
from tqdm import tqdm

from cfexp.fit.common import Callback, FitResult, Recipe


class EpochProgress(Callback):
    """A tqdm bar over a run's epochs showing the live train and validation losses (off when not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.bar: tqdm | None = None

    def on_fit_start(self, model, recipe: Recipe) -> None:
        self.bar = tqdm(total=recipe.epochs, desc=self.label, unit="epoch", file=sys.stderr, disable=None, leave=False)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            shown = {"train": metrics["train_loss"], "val": metrics.get("val_loss", math.nan)}
            shown.update({k.split("_at_")[0]: v for k, v in metrics.items() if k.startswith("ndcg_at_")})
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items() if math.isfinite(v)})
            self.bar.update(1)

    def on_fit_end(self, result: FitResult) -> None:
        if self.bar is not None:
            self.bar.close()


def print_history(name: str, result: FitResult, metrics: Sequence[str]) -> None:
    """The run's epochs: its variant's epoch `metrics` that its trainer reported (a ranking-only model has no val
    MSE), the ranking metrics when they were computed per epoch, then the final ranking."""
    print(f"\n{name}")
    frame = pd.DataFrame(result.history).dropna(axis=1, how="all")
    columns = ["epoch", *(c for c in metrics if c in frame)] + [c for c in frame if "_at_" in c] + ["seconds"]
    if not frame.empty:
        print(frame[[c for c in columns if c in frame]].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if result.status != "completed":
        print(f"  {result.status}: {result.reason}")
    if result.ranking:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in result.ranking.items() if k != "ranked_users")
        print(f"  ranking of the final model ({result.ranking.get('ranked_users')} users): {shown}")


def print_comparison(results: list) -> None:
    ndcg = next((k for _, r in results for k in r.ranking if k.startswith("ndcg_at_")), "ndcg")
    label = ndcg.replace("_at_", "@")
    head = f"{'run':<24} {'variant':<18} {'epochs':>6} {'val_loss':>9} {'best':>8} {'test':>8} {label:>8} {'s':>6}"
    print(f"\n{head}  status")
    for run, result in results:
        test = f"{result.test_loss:.4f}" if result.test_loss is not None else "-"
        rank = f"{result.ranking[ndcg]:.4f}" if ndcg in result.ranking else "-"
        print(
            f"{run.name:<24} {run.variant:<18} {len(result.history):>6} {_number(result.val_loss):>9} "
            f"{_number(result.best_val_loss):>8} {test:>8} {rank:>8} {result.seconds:>6.1f}  {result.status}"
        )


def _number(value: float | None) -> str:
    return f"{value:.4f}" if value is not None and math.isfinite(value) else "-"


class SweepProgress:
    """One line per finished trial (the state, its best val MSE and the study's best), and a bar per trial.

    With several workers every line starts with the worker's label, and there are no bars (they would overwrite
    each other on one terminal)."""

    def __init__(self, quiet: bool = False, label: str = "", bars: bool = True):
        self.quiet = quiet
        self.study = ""
        self.prefix = f"[{label}] " if label else ""
        self.bars = bars

    def start_study(self, name: str, remaining: int, finished: int) -> None:
        self.study = name
        if not self.quiet:
            resumed = f" (resuming after {finished})" if finished else ""
            print(f"{self.prefix}{name}: {remaining} trial(s) to run{resumed}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A line about the sweep itself (a study stopped early, a tracking problem), shown even when quiet."""
        print(f"cfexp: {self.prefix}{text}", file=sys.stderr, flush=True)

    def epochs(self, run) -> Callback:
        return EpochProgress(run.name) if self.bars and not self.quiet else Callback()

    def on_final(self, study: str, record: dict, seconds: float) -> None:
        """The study's final model: refit on train + validation, scored once on test."""
        if self.quiet:
            return
        where = f"{self.prefix}{study} " if self.prefix else "  "
        scores = ", ".join(
            f"{k[5:].replace('_at_', '@').replace('loss', 'MSE')} {record[k]:.4f}"
            for k in ("test_loss", *(k for k in record if k.startswith("test_ndcg")))
            if k in record
        )
        refit, note = f"t{record['trial']}", ""
        if "refit_trial" in record:  # the best trial's refit diverged (cfexp.search.final_run)
            refit, note = f"t{record['refit_trial']}", f"; passed over {'; '.join(record['passed_over'])}"
        print(
            f"{where}final ({refit} refit on train + validation{note}): test {scores} ({seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    def on_trial(self, study, trial) -> None:
        if self.quiet:
            return
        value = trial.value if trial.value is not None else min(trial.intermediate_values.values(), default=None)
        shown = f"{value:.4f}" if value is not None else "-"
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        where = f"{self.prefix}{study.study_name} " if self.prefix else "  "
        what = "val" if study.direction.name == "MINIMIZE" else "ndcg"  # the objective's value either way
        line = f"{where}t{trial.number:<3} {trial.state.name:<8} {what} {shown}  best {best}"
        print(line, file=sys.stderr, flush=True)


def print_sweep_table(rows: list[dict]) -> None:
    """Each study's best trial (by its objective: MSE, or the ranking metric a ranking study tunes): first what its
    final model scores on the test split (reported), then what selected it on validation."""
    width = max([len("study"), *(len(row["study"]) for row in rows)])
    ndcg = next((k for row in rows for k in row if k.startswith("ndcg_at_")), "ndcg_at_10")
    label = ndcg.replace("_at_", "@")
    tested = any(row.get("final_run_id") for row in rows)
    test_head = f"{'test MSE':>9} {'RMSE':>7} {label:>8} | " if tested else ""
    print(
        f"\n{'study':<{width}} {test_head}{'val MSE':>8} {'RMSE':>7} {label:>8} {'done/pruned/failed':>18}  best params"
    )
    for row in rows:
        counts = f"{row['complete']}/{row['pruned']}/{row['failed']}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        tuned = "" if row.get("objective", "val_loss") == "val_loss" else f" (tuned for {label})"
        if "refit_trial" in row:  # the best trial's refit diverged; the next best's was scored
            tuned += f"; test figures from t{row['refit_trial']}'s refit"
        tests = ""
        if tested:
            mse, rmse, rank = (_number(row.get(f"test_{k}")) for k in ("loss", "rmse", ndcg))
            tests = f"{mse:>9} {rmse:>7} {rank:>8} | "
        mse, rmse, rank = (_number(row.get(k)) for k in ("best_val_loss", "best_val_rmse", ndcg))
        print(f"{row['study']:<{width}} {tests}{mse:>8} {rmse:>7} {rank:>8} {counts:>18}  {params}{tuned}")
