"""cfexp from a notebook: load ratings, train an experiment's runs, sweep, evaluate, and load the champion.

Every function returns plain objects (frames, fitted runs, a model) and prints nothing unless asked (`echo=True`).
Sweeps and evaluations run as `cfexp` processes, as on the command line, so that a notebook gets the same stores,
workers and recovery (and a kernel interrupt stops them cleanly); their results come back as frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cfexp.config.experiment import Experiment, RunConfig
from cfexp.config.experiment import load_experiment as _load_experiment
from cfexp.data.dataset import Dataset, dataset_of, load_dataset
from cfexp.data.ratings import Ratings, load_ratings
from cfexp.errors import UserError

__all__ = [
    "TrainedRun",
    "benchmark",
    "champion",
    "evaluate",
    "load_experiment",
    "load_ratings",
    "sweep",
    "table",
    "train",
]


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """An experiment TOML, with `key=value` overrides applied as `--set` does (docs/configuration.md)."""
    return _load_experiment(path, list(overrides))


@dataclass
class TrainedRun:
    """One run trained: its resolved settings, the fitted torch model, and how the fit went."""

    run: RunConfig
    model: object  # torch.nn.Module
    result: object  # cfexp.fit.common.FitResult
    mlflow_run_id: str | None = None

    @property
    def history(self) -> pd.DataFrame:
        """One row per epoch: the losses and metrics its trainer reported."""
        return pd.DataFrame(self.result.history)

    def row(self) -> dict:
        return {
            "run": self.run.name,
            "variant": self.run.variant,
            "epochs": len(self.result.history),
            "val_loss": self.result.val_loss,
            "best_val_loss": self.result.best_val_loss,
            "test_loss": self.result.test_loss,
            **self.result.ranking,
            "status": self.result.status,
        }


def train(
    experiment: Experiment | str | Path,
    runs: Sequence[str] | None = None,
    *,
    ratings: Ratings | None = None,
    track: bool = False,
    callbacks: Callable[[RunConfig], list] | None = None,
    dataset: Dataset | None = None,
) -> list[TrainedRun]:
    """Train the experiment's runs (or those named in `runs`) on its split, as `cfexp train` does.

    The data are the experiment's `[data]`, or `ratings` already read (filtered and split here as `[data]` says),
    or a `dataset` already filtered and split (cfexp.data.dataset). `track=True` logs each run to the project's
    MLflow store (MLFLOW_TRACKING_URI, else mlruns/mlflow.db);
    `callbacks(run)` gives more trainer callbacks for a run (cfexp.fit.common.Callback: a progress bar, say)."""
    from cfexp.data.key import relevance
    from cfexp.fit.common import Recipe
    from cfexp.metrics.ranking import Protocol
    from cfexp.variants import runner

    if not isinstance(experiment, Experiment):
        experiment = load_experiment(experiment)
    chosen = [r for r in experiment.runs if runs is None or r.name in runs]
    unknown = sorted(set(runs or ()) - {r.name for r in experiment.runs})
    if unknown or not chosen:
        known = ", ".join(r.name for r in experiment.runs) or "none"
        raise UserError(f"no run(s) {', '.join(unknown) or 'at all'} in {experiment.name!r}; its runs: {known}")
    if dataset is None:
        dataset = dataset_of(ratings, experiment.data) if ratings is not None else load_dataset(experiment.data)
    ratings, split = dataset.ratings, dataset.split
    protocol = Protocol(experiment.eval.k, relevance(ratings, experiment))
    on_device, resolved = {}, []
    for run in chosen:  # everything checked before anything trains
        if run.device not in on_device:
            on_device[run.device] = runner.to_device(ratings, split, run.device, protocol)
        tensors = on_device[run.device]
        run = runner.resolved(run, tensors)
        runner.build_for(run, tensors)
        Recipe(**run.recipe_kwargs())
        resolved.append((run, tensors))
    more = callbacks or (lambda run: [])
    if track:
        return _train_tracked(experiment, ratings, resolved, more)
    trained = []
    for run, tensors in resolved:
        model, result = runner.fit_run(run, tensors, more(run), experiment.eval.per_epoch)
        trained.append(TrainedRun(run, model, result))
    return trained


def _train_tracked(experiment: Experiment, ratings: Ratings, resolved: list, more: Callable) -> list[TrainedRun]:
    from cfexp import keys
    from cfexp.serve.pyfunc import recommender_for
    from cfexp.track import EpochLogger, Tracker
    from cfexp.variants import get_variant, runner

    tracker = Tracker(experiment.name)
    tracker.set_dataset(ratings.frame[["userId", "movieId", "rating"]], ratings.source, ratings.source, ratings.digest)
    trained = []
    try:
        for run, tensors in resolved:
            tags = {keys.EXPERIMENT: experiment.name, keys.VARIANT: run.variant, keys.ROLE: "train"}
            run_id = tracker.start_run(run.name, runner.params(run), {**tags, "dataset.digest": ratings.digest})
            logger = EpochLogger(tracker, run_id, get_variant(run.variant).epoch_metrics)
            try:
                model, result = runner.fit_run(run, tensors, [logger, *more(run)], experiment.eval.per_epoch)
            except BaseException:
                tracker.finish(run_id, "KILLED")
                raise
            state = "FAIL" if result.status == "diverged" else "COMPLETE"
            if state == "COMPLETE":
                tracker.log_model(run_id, recommender_for(model, ratings))
            tracker.close_run(run_id, runner.params(run), result, state, result.reason)
            trained.append(TrainedRun(run, model, result, run_id))
    finally:
        tracker.close()
    return trained


def table(trained: Sequence[TrainedRun]) -> pd.DataFrame:
    """The runs side by side: one row each, with its final losses and ranking metrics."""
    return pd.DataFrame([t.row() for t in trained])


def _cfexp(args: list[str], echo: bool) -> dict:
    """Run `cfexp ARGS --summary FILE` as a process and return its summary document."""
    with tempfile.TemporaryDirectory() as folder:
        summary = Path(folder) / "summary.json"
        command = [sys.executable, "-m", "cfexp.cli", *args, "--summary", str(summary)]
        if not echo:
            command.append("--quiet")
        done = subprocess.run(command, capture_output=not echo, text=True)
        if done.returncode != 0:
            said = (done.stderr or "").strip().splitlines()
            raise UserError(said[-1] if said else f"cfexp {args[0]} exited with {done.returncode}")
        return json.loads(summary.read_text())


def sweep(
    experiment: str | Path,
    *,
    workers: int = 1,
    trials: int | None = None,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    echo: bool = False,
    across_settings: Sequence[str] = (),
) -> pd.DataFrame:
    """`cfexp sweep`: tune every study of the experiment; one row per study (validation and test figures). With
    `across_settings` (`["data.split=random,temporal"]`, as `--across`) or a file's `[across]`, every setting in
    turn: one row per (setting, study)."""
    args = ["sweep", str(experiment), "--workers", str(workers), *_sets(overrides)]
    args += ["--trials", str(trials)] if trials is not None else []
    args += ["--storage", storage] if storage else []
    args += [arg for item in across_settings for arg in ("--across", item)]
    document = _cfexp(args, echo)
    if "settings" in document:
        rows = [{"setting": s["setting"], **row} for s in document["settings"] for row in s["summary"]["studies"]]
        return pd.DataFrame(rows)
    return pd.DataFrame(document.get("studies", []))


def benchmark(
    experiment: str | Path,
    across_settings: Sequence[str] = (),
    *,
    overrides: Sequence[str] = (),
    storage: str | None = None,
    out: str | Path = "reports",
) -> pd.DataFrame:
    """`cfexp report EXP --across ...`: the cross-setting report of a swept experiment, written to
    `out/<name>-across/` and logged to MLflow; one row per (setting, study) with its figures, as its matrix.csv."""
    import argparse

    from cfexp.across import report as across_report
    from cfexp.config.across_table import from_cli
    from cfexp.report.collect import Stores
    from cfexp.search import reconcile, study_store

    loaded = load_experiment(experiment, overrides)
    settings = from_cli(list(across_settings)) if across_settings else loaded.across
    if not settings:
        raise UserError(f"{experiment} names no settings: give across_settings, or an [across] table")
    store = study_store.open_store(storage)
    args = argparse.Namespace(
        experiment=str(experiment), overrides=list(overrides), across=list(across_settings), out=str(out),
        ratings=None, device=None, quiet=True,
    )  # fmt: skip
    _, _, frame = across_report.build(
        args, loaded.name, loaded.description, settings, Stores(store.storage), lambda n: reconcile.on_open(store, n)
    )
    return frame


def evaluate(
    experiment: str | Path, *, folds: int | None = None, storage: str | None = None, echo: bool = False
) -> pd.DataFrame:
    """`cfexp evaluate`: each study's best configuration on seeded folds; one row per (study, fold)."""
    args = ["evaluate", str(experiment), *(["--folds", str(folds)] if folds else [])]
    args += ["--storage", storage] if storage else []
    return pd.DataFrame(_cfexp(args, echo).get("folds", []))


def champion(experiment: str = "variants", job: str = "ranking"):
    """The experiment's registered champion for a job, loaded: the ranking champion by default (`.top(user_id, k)`
    gives a frame of recommendations), or the rating champion with `job="rating"` (`.predict_ratings(frame)`)."""
    from cfexp.serve.recommend import default_model, load_recommender

    if job not in ("ranking", "rating"):
        raise UserError(f"job must be 'ranking' or 'rating', got {job!r}")
    uri, _ = default_model(experiment, job)
    return load_recommender(uri)


def _sets(overrides: Sequence[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]
