"""`cfexp sweep`: check everything, open both stores, run this process's share (with its helper workers), report.

With `--workers N` the helpers are started first thing, so that their imports and data loading overlap this
process's checks; each waits for a word on its stdin before it touches a store: "go" once everything has been
checked and the stores exist, or nothing (end of input) when the sweep was refused, and then it leaves quietly.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from cfexp.cli import across
from cfexp.data.inputs import experiment_from
from cfexp.errors import UserError
from cfexp.search.summary_document import champion_record, write_summary
from cfexp.system.redact import redact


def check_args(args: argparse.Namespace) -> None:
    for flag, low in (("trials", 1), ("threads", 1), ("workers", 1)):
        value = getattr(args, flag)
        if value is not None and value < low:
            raise UserError(f"--{flag} must be >= {low}, got {value}")
    if args.timeout is not None and not args.timeout > 0:
        raise UserError(f"--timeout must be > 0 seconds, got {args.timeout}")
    if args.worker_index is not None and not 0 < args.worker_index < args.workers:
        raise UserError(f"--worker-index must be in 1..{args.workers - 1}")


def main(args: argparse.Namespace) -> int:
    from cfexp.search import worker_processes

    check_args(args)
    helper = args.worker_index is not None
    try:
        experiment = experiment_from(args, need_runs=False)
        if experiment.sweep is None:
            raise UserError(f"{args.experiment} has no [sweep] table to tune")
        devices = {spec.run.device for spec in experiment.sweep.studies}
        if len(devices) > 1:
            raise UserError(f"a sweep runs on one device; the variants ask for {sorted(devices)}")
    except UserError:
        if helper:
            return 2  # the first worker has said it already
        raise
    settings = across.settings_of(args, experiment)
    if settings:
        return across.run(args, experiment.name, settings, main)
    device = devices.pop()
    folder = tempfile.TemporaryDirectory(prefix="cfexp-workers-")
    helpers = worker_processes.Helpers(args, device, Path(folder.name)) if args.workers > 1 and not helper else None
    try:
        with folder:
            return _sweep(args, experiment, device, helpers)
    except BaseException:
        if helpers:
            helpers.stop()
        raise


def _sweep(args, experiment, device: str, helpers) -> int:
    from cfexp import track
    from cfexp.cli.progress import SweepProgress
    from cfexp.data import key as data_key
    from cfexp.data.dataset import load_dataset
    from cfexp.metrics.ranking import Protocol
    from cfexp.search import reconcile, study_store, sweep, worker_processes, workers
    from cfexp.search import space as search_space
    from cfexp.system.cpu_share import CpuShare
    from cfexp.variants import applicable, refit, runner

    helper = args.worker_index is not None
    try:
        dataset = load_dataset(experiment.data)
        ratings, split = dataset.ratings, dataset.split
        key = data_key.data_key(dataset, experiment)
        named = experiment.name
        experiment = data_key.named_for_data(experiment, key)
        experiment, skipped = applicable.studies_for(experiment, ratings)
        protocol = Protocol(experiment.eval.k, key.relevance)
        tensors = runner.to_device(ratings, split.search(), device, protocol)  # what trials see: no test row
        holdout = refit.holdout_for(ratings, split, device, protocol)  # for the final fits only
    except UserError:
        if helper:
            return 2  # the first worker says it
        raise
    if helper:
        if not worker_processes.wait_for_go():
            return 0
    else:
        for spec in experiment.sweep.studies:
            search_space.check_study(spec, tensors)
        track.preflight(track.tracking_uri())  # both stores are checked before either is created
    store = study_store.open_store(args.storage)
    if not helper:
        sweep.existing_studies(experiment, store.storage, key)
    started = time.perf_counter()  # the wall includes opening the tracking store, which counts as tracking
    tracker = track.Tracker(experiment.name)
    tracker.set_dataset(ratings.frame[["userId", "movieId", "rating"]], ratings.source, ratings.source, ratings.digest)
    label = f"w{args.worker_index or 0}" if args.workers > 1 else ""
    progress = SweepProgress(args.quiet, label=label, bars=args.workers == 1 and not args.no_bars)
    if not helper:  # every study of the experiment, the finished ones too, before any worker opens one
        reconciled = reconcile.reconcile_experiment(store, tracker, experiment.name)
        if reconciled:
            progress.note(reconciled.sentence())
    if helpers:
        helpers.go()
    if experiment.name != named and not helper:
        progress.note(f"the data differ from {args.experiment}'s: this sweep is experiment {experiment.name}")
    for line in skipped if not helper else []:
        progress.note(line)
    plan = workers.Plan.for_sweep(len(experiment.sweep.studies), args.workers)
    with CpuShare(args.threads) as cpu:
        runner = sweep.Sweep(experiment, tensors, tracker, store, progress, cpu, key, holdout)
        try:
            outcomes = runner.run(args.trials, args.timeout, workers.studies_for(plan, runner, args.trials))
            tracker.flush()  # a call that could not be logged even now is a TrackingError: one line, exit 1
        finally:
            tracker.close()
    others = helpers.summaries() if helpers else []
    wall = time.perf_counter() - started
    records = [record for outcome in outcomes for record in outcome.records]
    records += [record for other in others for record in other["runs"]]
    everything = outcomes if helper else runner.outcomes_of_all()
    rows = [outcome.row() for outcome in everything]
    if not helper:
        _publish(experiment.name, everything, rows, tracker.commit, progress)
    if not helper and not args.quiet:
        refits = sum(outcome.final_seconds for outcome in outcomes) + sum(o.get("final_seconds", 0.0) for o in others)
        _print_closing(rows, wall, tracker, others, refits, dataset)
    if args.summary:
        _summary(args, experiment, dataset, records, rows, wall, tracker, others, outcomes)
    codes = helpers.wait() if helpers else []
    failed = [(i, code) for i, code in enumerate(codes, start=1) if code]
    if failed:
        raise UserError(f"worker {failed[0][0]} exited with {failed[0][1]}; rerun the same command to resume")
    return 0


def _publish(experiment: str, outcomes, rows: list[dict], commit: str, progress) -> None:
    """Each finished study's best into the Model Registry, and the champion alias (cfexp.search.publish)."""
    from mlflow.exceptions import MlflowException

    from cfexp.search import publish
    from cfexp.track import store

    try:
        client = store.open_client(store.tracking_uri())
        store.retrying(publish.register_finished, client, outcomes, commit)
        store.retrying(publish.crown_champion, client, experiment, rows)
    except (MlflowException, store.TrackingError) as exc:
        progress.note(f"could not register the best models: {redact(exc)}; the runs and their models are logged")


def _print_closing(rows, wall, tracker, others, refits: float, dataset) -> None:
    from cfexp.cli.progress import print_sweep_table

    print_sweep_table(rows)
    print("\n" + "\n".join(dataset.lines()))
    if any(row.get("final_run_id") for row in rows):
        print(
            f"\nfinal fits (train + validation, scored once on test): {refits:.1f} s of the wall ({refits / wall:.1%})"
        )
    blocked = tracker.seconds + sum(o["tracking_seconds"] for o in others)
    background = tracker.background_seconds + sum(o["tracking_background_seconds"] for o in others)
    share = blocked / (wall * (1 + len(others))) if wall else 0.0
    workers = f" over {1 + len(others)} workers" if others else ""
    print(
        f"\nwall {wall:.1f} s; tracking blocked {blocked:.1f} s{workers} ({share:.1%}), plus {background:.1f} s on "
        f"background threads; MLflow: {redact(tracker.uri)}",
        file=sys.stdout,
    )


def _summary(args, experiment, dataset, records, rows, wall, tracker, others, outcomes) -> None:
    write_summary(
        args.summary,
        experiment.name,
        dataset.summary(),
        records,
        studies=rows,
        seconds=wall,
        tracking_seconds=tracker.seconds + sum(o["tracking_seconds"] for o in others),
        tracking_background_seconds=tracker.background_seconds + sum(o["tracking_background_seconds"] for o in others),
        workers=args.workers,
        final_seconds=sum(outcome.final_seconds for outcome in outcomes),
        best=champion_record(rows, records),
    )
