"""What a person watches in the terminal: a live progress bar per run, epoch tables and a comparison table."""

from __future__ import annotations

import sys

from tqdm import tqdm

from cfexp.train import Callback, FitResult, Recipe


class EpochProgress(Callback):
    """A tqdm bar over a run's epochs showing the live train and validation losses (off when not a terminal)."""

    def __init__(self, label: str):
        self.label = label
        self.bar: tqdm | None = None

    def on_fit_start(self, model, recipe: Recipe) -> None:
        self.bar = tqdm(total=recipe.epochs, desc=self.label, unit="epoch", file=sys.stderr, disable=None, leave=False)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.set_postfix(train=f"{metrics['train_loss']:.4f}", val=f"{metrics['val_loss']:.4f}")
            self.bar.update(1)

    def on_fit_end(self, result: FitResult) -> None:
        if self.bar is not None:
            self.bar.close()


def print_history(name: str, result: FitResult) -> None:
    print(f"\n{name}")
    # a sampler has no lr; its second column is the noise precision it ran at
    step = "lr" if not result.history or "lr" in result.history[0] else "noise_precision"
    label = "lr" if step == "lr" else "noise"
    print(f"{'epoch':>5} {label:>8} {'train_loss':>10} {'val_loss':>10} {'val_rmse':>9} {'val_mae':>8} {'s':>6}")
    for h in result.history:
        print(
            f"{h['epoch']:>5} {h[step]:>8.3g} {h['train_loss']:>10.4f} {h['val_loss']:>10.4f} "
            f"{h['val_rmse']:>9.4f} {h['val_mae']:>8.4f} {h['seconds']:>6.2f}"
        )
    if result.status != "completed":
        print(f"  {result.status}: {result.reason}")


def print_comparison(results: list) -> None:
    print(f"\n{'run':<24} {'variant':<18} {'epochs':>6} {'val_loss':>9} {'best':>8} {'test':>8} {'s':>6}  status")
    for run, result in results:
        test = f"{result.test_loss:.4f}" if result.test_loss is not None else "-"
        print(
            f"{run.name:<24} {run.variant:<18} {len(result.history):>6} {result.val_loss:>9.4f} "
            f"{result.best_val_loss:>8.4f} {test:>8} {result.seconds:>6.1f}  {result.status}"
        )


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
        print(f"{where}t{trial.number:<3} {trial.state.name:<8} val {shown}  best {best}", file=sys.stderr, flush=True)


def print_sweep_table(rows: list[dict]) -> None:
    width = max([len("variant"), *(len(row["study"]) for row in rows)])
    print(f"\n{'variant':<{width}} {'best MSE':>9} {'RMSE':>7} {'done/pruned/failed':>18}  best params")
    for row in rows:
        mse = f"{row['best_val_loss']:.4f}" if row["best_val_loss"] is not None else "-"
        rmse = f"{row['best_val_rmse']:.4f}" if row["best_val_rmse"] is not None else "-"
        counts = f"{row['complete']}/{row['pruned']}/{row['failed']}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        print(f"{row['study']:<{width}} {mse:>9} {rmse:>7} {counts:>18}  {params}")
