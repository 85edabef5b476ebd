"""`cfexp evaluate`: each study's best configuration, retrained on K seeded folds, with intervals and paired tests;
and the champion against the runner-up on the test split, by a bootstrap over test users (and the ranking champion
against the top-N floor, ease, by NDCG@k).

The sweep picks each study's best trial on one validation split, so its lead may be that split's luck. Here every
best configuration is trained again on the same K folds of train + validation (scikit-learn's KFold, shuffled with
[eval] seed): fold f scores, the rest trains. The test split is left alone: it belongs to the final models, which the
bootstrap compares. Every fold of every study is a child run of one `evaluate` parent run in MLflow; the report
reads them back. The trials' own epoch selection on validation (restore_best, patience) is switched off, so that no
fold's score has seen its own rows. `--nested` runs each study's search again inside every outer fold instead
(cfexp.evaluation.nested), so that the folds score the whole procedure, search included.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace

import numpy as np
import optuna
import pandas as pd
from sklearn.model_selection import KFold

from cfexp import keys, track
from cfexp.config.experiment import RunConfig
from cfexp.config.sweep_table import StudySpec
from cfexp.data import key as data_key
from cfexp.data.dataset import load_dataset
from cfexp.data.inputs import experiment_from
from cfexp.data.ratings import Split
from cfexp.errors import UserError
from cfexp.metrics import stats as evaluation_stats
from cfexp.metrics.ranking import Protocol
from cfexp.search import reconcile, study_store
from cfexp.search.space import with_params
from cfexp.search.summary_document import json_safe, write_summary
from cfexp.search.sweep import existing_studies
from cfexp.variants import applicable, runner

ROLE = "evaluate"  # the parent run's cfexp.role


def folds_of(rows: np.ndarray | int, k: int, seed: int) -> list[Split]:
    """K seeded folds of `rows` (row indices, or n for all of 0..n-1): fold f scores, the others train."""
    rows = np.arange(rows) if isinstance(rows, int) else np.asarray(rows)
    empty = np.empty(0, dtype=np.int64)
    folds = KFold(k, shuffle=True, random_state=seed).split(np.zeros(len(rows)))
    return [Split(np.sort(rows[train]), np.sort(rows[val]), empty) for train, val in folds]


def best_runs(studies: list[tuple[StudySpec, optuna.Study]]) -> list[tuple[StudySpec, RunConfig, int]]:
    """Each study's best trial, as (spec, run at its params, trial number); studies with no complete trial skipped."""
    found = []
    for spec, study in studies:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if not done:
            continue
        best = (min if spec.direction == "minimize" else max)(done, key=lambda t: t.value)
        run = replace(with_params(spec.run, best.params), name=spec.name, restore_best=False, patience=0)
        found.append((spec, run, best.number))
    return found


def main(args: argparse.Namespace) -> int:
    from cfexp.evaluation import holdout as holdout_bootstrap

    experiment = experiment_from(args, need_runs=False)
    if experiment.sweep is None:
        raise UserError(f"{args.experiment} has no [sweep] table, so no studies to evaluate")
    folds = args.folds or experiment.eval.folds
    if folds < 2:
        raise UserError(f"--folds must be >= 2, got {folds}")
    store = study_store.open_store(args.storage)
    if store.missing:
        raise UserError(f"no Optuna journal at {store.shown}: run cfexp sweep {args.experiment} first")
    dataset = load_dataset(experiment.data)
    ratings, split = dataset.ratings, dataset.split
    key = data_key.data_key(dataset, experiment)
    experiment = data_key.named_for_data(experiment, key)
    experiment, _ = applicable.studies_for(experiment, ratings)
    studies = existing_studies(experiment, store.storage, key)
    chosen = best_runs(studies)
    if not chosen:
        raise UserError(f"no study of {experiment.name!r} has a complete trial: run cfexp sweep {args.experiment}")
    protocol = Protocol(experiment.eval.k, key.relevance)
    searchable = split.refit_rows() if len(split.test) else np.arange(len(ratings.frame))
    splits = folds_of(searchable, folds, experiment.eval.seed)
    track.preflight(track.tracking_uri())
    tracker = track.Tracker(experiment.name)
    reconcile.on_open(store, experiment.name, tracker)
    started = time.perf_counter()
    try:
        table = _run_folds(args, experiment, ratings, protocol, splits, chosen, tracker, key)
        lead = ranking_lead = None
        if len(split.test):
            lead = holdout_bootstrap.compare_finals(studies, ratings, split)
            ranking_lead = holdout_bootstrap.ranking_lead(studies, ratings, split, protocol)
        for found, prefix, tag in (
            (lead, "test_lead", keys.TEST_LEAD),
            (ranking_lead, "test_ranking_lead", keys.TEST_RANKING_LEAD),
        ):
            if found is not None:
                _log_lead(tracker, table.attrs["run_id"], found, prefix, tag)
    finally:
        tracker.close()
    if not args.quiet:
        print_evaluation(table, protocol, time.perf_counter() - started, args.nested)
        for found in (lead, ranking_lead):
            if found is not None:
                print(f"\n{found.sentence()}")
    if args.summary:
        write_summary(
            args.summary,
            experiment.name,
            dataset.summary(),
            [],
            folds=json_safe(table.to_dict("records")),
            comparisons=json_safe([{**c.__dict__, "sentence": c.sentence()} for c in comparisons(table, protocol)]),
            test_lead=lead.as_dict() if lead else None,
            test_ranking_lead=ranking_lead.as_dict() if ranking_lead else None,
            nested=args.nested,
            seconds=time.perf_counter() - started,
        )
    return 0


def _log_lead(tracker, run_id: str, lead, prefix: str, tag: str) -> None:
    """A champion's lead on the test split as the evaluate run's metrics (`prefix`, _low, _high, _users, _p) and tag."""
    metrics = {prefix: lead.lead, f"{prefix}_low": lead.low, f"{prefix}_high": lead.high}
    tracker.log_metrics(run_id, metrics | {f"{prefix}_users": lead.users, f"{prefix}_p": lead.p})
    tracker.set_tags(run_id, {tag: lead.sentence()})


def _run_folds(args, experiment, ratings, protocol, splits, chosen, tracker, key) -> pd.DataFrame:
    from cfexp.evaluation import nested as evaluate_nested

    params = {"folds": len(splits), "fold_seed": experiment.eval.seed, "k": protocol.k, "relevance": protocol.relevance}
    params["nested"] = args.nested
    tags = {keys.EXPERIMENT: experiment.name, keys.ROLE: ROLE, "dataset.digest": ratings.digest}
    tags[data_key.ATTR] = key.key
    parent = tracker.start_run(ROLE, params, tags)
    rows = []
    try:
        for fold, split in enumerate(splits):
            if args.nested:
                for spec, _, _ in chosen:
                    run, trial, fit = evaluate_nested.nested_fold(experiment, spec, ratings, split, protocol, fold)
                    rows.append(_scored(tracker, parent, experiment, spec, run, trial, fold, args.quiet, fit))
                continue
            tensors = runner.to_device(ratings, split, chosen[0][1].device, protocol)
            for spec, run, trial in chosen:
                rows.append(_fold(tracker, parent, experiment, tensors, spec, run, trial, fold, args.quiet))
    except BaseException:
        tracker.set_tags(parent, {keys.FAIL_REASON: "interrupted"})
        tracker.finish(parent, "KILLED")
        raise
    table = pd.DataFrame(rows)
    tracker.later(tracker.client.log_text, parent, table.to_csv(index=False), "evaluation/folds.csv", run_id=parent)
    for metric in ("mse", protocol.keys()[0]):
        summary = evaluation_stats.summarise(table, metric)
        text = summary.to_csv(index=False)
        tracker.later(tracker.client.log_text, parent, text, f"evaluation/summary_{metric}.csv", run_id=parent)
    tracker.finish(parent, "COMPLETE")
    table.attrs["run_id"] = parent
    return table


def _fold(tracker, parent, experiment, tensors, spec, run, trial, fold, quiet) -> dict:
    run = runner.resolved(replace(run, name=f"{spec.name}-fold{fold}"), tensors)

    def fit():
        _, result = runner.fit_run(run, tensors)
        mse = result.history[-1]["val_loss"] if result.history else math.nan
        return result, {"mse": mse, **{k: v for k, v in result.ranking.items() if k != "ranked_users"}}

    return _scored(tracker, parent, experiment, spec, run, trial, fold, quiet, fit)


def _scored(tracker, parent, experiment, spec, run, trial, fold, quiet, fit) -> dict:
    """One study on one fold as a child run: `fit()` trains and gives (FitResult, the fold's metrics)."""
    tags = {
        keys.EXPERIMENT: experiment.name,
        keys.ROLE: "evaluate-fold",
        keys.STUDY: spec.name,
        keys.VARIANT: run.variant,
        keys.FOLD: fold,
        keys.BEST_TRIAL: trial,
    }
    child = tracker.start_run(run.name, {**runner.params(run), "fold": fold}, tags, parent_id=parent)
    try:
        result, metrics = fit()
    except BaseException:
        tracker.finish(child, "KILLED")
        raise
    tracker.log_metrics(child, {**metrics, "seconds": result.seconds})
    tracker.set_tags(child, {"optuna.state": "FAIL" if result.status == "diverged" else "COMPLETE"})
    tracker.finish(child, "FAIL" if result.status == "diverged" else "COMPLETE")
    if not quiet:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if math.isfinite(v))
        print(f"  fold {fold} {spec.name}: {shown} ({result.seconds:.1f} s)", file=sys.stderr, flush=True)
    return {"study": spec.name, "variant": run.variant, "fold": fold, **metrics}


def comparisons(table: pd.DataFrame, protocol: Protocol) -> list[evaluation_stats.Comparison]:
    """The best study against every other, by fold MSE and by the ranking metric."""
    metrics = [m for m in ("mse", f"ndcg_at_{protocol.k}") if m in table and not table[m].isna().all()]
    return [c for metric in metrics for c in evaluation_stats.compare_with_best(table, metric)]


def print_evaluation(table: pd.DataFrame, protocol: Protocol, seconds: float, nested: bool = False) -> None:
    folds = table.fold.nunique()
    how = "nested: each study searched again inside every fold" if nested else "each study's best configuration"
    for metric in ("mse", protocol.keys()[0]):
        label = "MSE" if metric == "mse" else metric.replace("_at_", "@")
        summary = evaluation_stats.summarise(table, metric)
        print(f"\n{label} on {folds} folds of train + validation, {how} (mean ± sd, 95% t interval)")
        for row in summary.itertuples():
            print(f"  {row.study:<28} {row.mean:.4f} ± {row.sd:.4f}  [{row.ci_low:.4f}, {row.ci_high:.4f}]")
        for comparison in evaluation_stats.compare_with_best(table, metric):
            print(f"  {comparison.sentence()}")
    note = evaluation_stats.wilcoxon_note(folds)
    if note:
        print(f"\n{note}")
    print(f"\nwall {seconds:.1f} s")
