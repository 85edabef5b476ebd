"""`cfexp evaluate`: each study's best configuration, retrained on K seeded folds, with intervals and paired tests.

The sweep picks each study's best trial on one validation split, so its lead may be that split's luck. Here every
best configuration is trained again on the same K folds of all the ratings (scikit-learn's KFold, shuffled with
[eval] seed): fold f is the validation set, the rest the training set. Every fold of every study is a child run
of one `evaluate` parent run in MLflow; the report reads them back. The trials' own epoch selection on validation
(restore_best, patience) is switched off, so that no fold's score has seen its own validation set.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import KFold

from cfexp import data, evaluation_stats, runner, study_store, track
from cfexp.config import RunConfig
from cfexp.data import Split
from cfexp.errors import UserError
from cfexp.inputs import experiment_from
from cfexp.ranking import Protocol
from cfexp.search_space import with_params
from cfexp.summary import json_safe, write_summary
from cfexp.sweep_config import StudySpec

ROLE = "evaluate"  # the parent run's cfexp.role


def folds_of(n: int, k: int, seed: int) -> list[Split]:
    """K seeded folds of n rows: fold f validates, the others train."""
    empty = np.empty(0, dtype=np.int64)
    folds = KFold(k, shuffle=True, random_state=seed).split(np.zeros(n))
    return [Split(np.sort(train), np.sort(val), empty) for train, val in folds]


def best_runs(experiment, storage) -> list[tuple[StudySpec, RunConfig, int]]:
    """Each study's best trial, as (spec, run at its params, trial number); studies with no complete trial skipped."""
    found = []
    for spec in experiment.sweep.studies:
        try:
            study = optuna.load_study(study_name=f"{experiment.name}/{spec.name}", storage=storage)
        except KeyError:
            continue  # never swept
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not done:
            continue
        best = (min if spec.direction == "minimize" else max)(done, key=lambda t: t.value)
        run = replace(with_params(spec.run, best.params), name=spec.name, restore_best=False, patience=0)
        found.append((spec, run, best.number))
    return found


def main(args: argparse.Namespace) -> int:
    experiment = experiment_from(args, need_runs=False)
    if experiment.sweep is None:
        raise UserError(f"{args.experiment} has no [sweep] table, so no studies to evaluate")
    folds = args.folds or experiment.eval.folds
    if folds < 2:
        raise UserError(f"--folds must be >= 2, got {folds}")
    journal = args.storage or str(study_store.DEFAULT_JOURNAL)
    if "://" not in journal and not Path(journal).exists():
        raise UserError(f"no Optuna journal at {journal}: run cfexp sweep {args.experiment} first")
    store = study_store.open_store(args.storage)
    chosen = best_runs(experiment, store.storage)
    if not chosen:
        raise UserError(f"no study of {experiment.name!r} has a complete trial: run cfexp sweep {args.experiment}")
    ratings = data.load_ratings(experiment.data.ratings)
    protocol = Protocol(experiment.eval.k, experiment.eval.relevance)
    splits = folds_of(len(ratings.frame), folds, experiment.eval.seed)
    track.preflight(track.tracking_uri())
    tracker = track.Tracker(experiment.name)
    started = time.perf_counter()
    try:
        table = _run_folds(args, experiment, ratings, protocol, splits, chosen, tracker)
    finally:
        tracker.close()
    if not args.quiet:
        print_evaluation(table, protocol, time.perf_counter() - started)
    if args.summary:
        write_summary(
            args.summary,
            experiment.name,
            data.summary(ratings),
            [],
            folds=json_safe(table.to_dict("records")),
            seconds=time.perf_counter() - started,
        )
    return 0


def _run_folds(args, experiment, ratings, protocol, splits, chosen, tracker) -> pd.DataFrame:
    params = {"folds": len(splits), "fold_seed": experiment.eval.seed, "k": protocol.k, "relevance": protocol.relevance}
    tags = {"cfexp.experiment": experiment.name, "cfexp.role": ROLE, "dataset.digest": ratings.digest}
    parent = tracker.start_run(ROLE, params, tags)
    rows = []
    try:
        for fold, split in enumerate(splits):
            tensors = runner.to_device(ratings, split, chosen[0][1].device, protocol)
            for spec, run, trial in chosen:
                rows.append(_fold(tracker, parent, experiment, tensors, spec, run, trial, fold, args.quiet))
    except BaseException:
        tracker.set_tags(parent, {"cfexp.fail_reason": "interrupted"})
        tracker.finish(parent, "KILLED")
        raise
    table = pd.DataFrame(rows)
    tracker.later(tracker.client.log_text, parent, table.to_csv(index=False), "evaluation/folds.csv", run_id=parent)
    for metric in ("mse", protocol.keys()[0]):
        summary = evaluation_stats.summarise(table, metric)
        text = summary.to_csv(index=False)
        tracker.later(tracker.client.log_text, parent, text, f"evaluation/summary_{metric}.csv", run_id=parent)
    tracker.finish(parent, "COMPLETE")
    return table


def _fold(tracker, parent, experiment, tensors, spec, run, trial, fold, quiet) -> dict:
    run = runner.resolved(replace(run, name=f"{spec.name}-fold{fold}"), tensors)
    tags = {
        "cfexp.experiment": experiment.name,
        "cfexp.role": "evaluate-fold",
        "cfexp.study": spec.name,
        "cfexp.variant": run.variant,
        "cfexp.fold": fold,
        "cfexp.best_trial": trial,
    }
    child = tracker.start_run(run.name, {**runner.params(run), "fold": fold}, tags, parent_id=parent)
    try:
        _, result = runner.fit_run(run, tensors)
    except BaseException:
        tracker.finish(child, "KILLED")
        raise
    mse = result.history[-1]["val_loss"] if result.history else math.nan
    metrics = {"mse": mse, **{k: v for k, v in result.ranking.items() if k != "ranked_users"}}
    tracker.log_metrics(child, {**metrics, "seconds": result.seconds})
    tracker.set_tags(child, {"optuna.state": "FAIL" if result.status == "diverged" else "COMPLETE"})
    tracker.finish(child, "FAIL" if result.status == "diverged" else "COMPLETE")
    if not quiet:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if math.isfinite(v))
        print(f"  fold {fold} {spec.name}: {shown} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)
    return {"study": spec.name, "variant": run.variant, "fold": fold, **metrics}


def print_evaluation(table: pd.DataFrame, protocol: Protocol, seconds: float) -> None:
    folds = table.fold.nunique()
    for metric in ("mse", protocol.keys()[0]):
        label = "val MSE" if metric == "mse" else metric.replace("_at_", "@")
        summary = evaluation_stats.summarise(table, metric)
        print(f"\n{label} over {folds} folds (mean ± sd, 95% t interval)")
        for row in summary.itertuples():
            print(f"  {row.study:<28} {row.mean:.4f} ± {row.sd:.4f}  [{row.ci_low:.4f}, {row.ci_high:.4f}]")
        for comparison in evaluation_stats.compare_with_best(table, metric):
            print(f"  {comparison.sentence()}")
    print(f"\nwall {seconds:.1f} s")
