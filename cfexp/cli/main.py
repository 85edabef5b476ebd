"""The `cfexp` command: a thin door to data, train, sweep and report."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from cfexp import __version__, keys
from cfexp.cli import data as data_command
from cfexp.config.across_table import from_cli
from cfexp.data.inputs import load_inputs
from cfexp.errors import UserError
from cfexp.search.summary_document import run_record, write_summary
from cfexp.system.redact import redact


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: the running trial is given up cleanly and retried by the next sweep."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.handler(args) or 0
    except UserError as exc:
        print(f"cfexp: error: {redact(exc)}", file=sys.stderr)
        return 2
    except Terminated:
        print("cfexp: terminated; rerun the same command to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("cfexp: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        from cfexp.search.study_store import StoreDown
        from cfexp.track import TrackingError

        if isinstance(exc, StoreDown):
            print(f"cfexp: error: {redact(exc)}; what was written is kept, rerun the same command", file=sys.stderr)
            return 1
        if not isinstance(exc, TrackingError):
            raise
        print(
            f"cfexp: error: the tracking store failed: {redact(exc)}; what was logged is kept, rerun to resume",
            file=sys.stderr,
        )
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame) -> None:
    raise Terminated()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cfexp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cfexp {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    data_command.add_parser(sub)

    variants = sub.add_parser("variants", help="list the registered model variants")
    variants.set_defaults(handler=cmd_variants)

    train = sub.add_parser("train", help="run an experiment's fixed runs")
    _experiment_args(train)
    train.set_defaults(handler=cmd_train)

    sweep = sub.add_parser("sweep", help="tune an experiment's variants with Optuna, each trial an MLflow run")
    _experiment_args(sweep)
    sweep.add_argument("--trials", type=int, help="trial budget per study (a rerun tops a study up to it)")
    sweep.add_argument("--timeout", type=float, help="seconds per study")
    sweep.add_argument("--storage", help="an Optuna RDB URL (e.g. postgresql://...), or a journal file path")
    sweep.add_argument("--threads", type=int, help="torch CPU threads (default: the cores ÷ the sweeps running here)")
    sweep.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    sweep.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)  # set on the helpers --workers starts
    sweep.add_argument("--no-bars", action="store_true", help=argparse.SUPPRESS)
    _across_args(sweep)
    sweep.add_argument("--in-setting", help=argparse.SUPPRESS)  # one setting of an --across benchmark
    sweep.set_defaults(handler=cmd_sweep)

    synth = sub.add_parser("synth", help="write a synthetic ratings.csv shaped like a MovieLens release")
    synth.add_argument("out", help="the ratings.csv to write")
    synth.add_argument("--shape", default="ml-25m", help="ml-25m (default), ml-1m or ml-100k")
    synth.add_argument("--seed", type=int, default=42)
    synth.set_defaults(handler=cmd_synth)

    evaluate = sub.add_parser("evaluate", help="retrain each study's best configuration on K folds: intervals, tests")
    _experiment_args(evaluate)
    evaluate.add_argument("--folds", type=int, help="K of the K-fold cross-validation (default: [eval] folds, 5)")
    evaluate.add_argument("--storage", help="the Optuna storage the sweep used (default: mlruns/optuna-journal.log)")
    evaluate.add_argument(
        "--nested", action="store_true", help="search each study again inside every fold (scores the whole procedure)"
    )
    evaluate.set_defaults(handler=cmd_evaluate)

    recommend = sub.add_parser("recommend", help="a user's top-k unrated movies from a registered or logged model")
    recommend.add_argument("--user", required=True, help="the userId to recommend for (as the data name it)")
    recommend.add_argument("-k", type=int, default=10, help="how many movies (default 10)")
    _model_args(recommend)
    recommend.add_argument("--storage", help="the Optuna storage the sweep used, reconciled first (default as sweep)")
    recommend.set_defaults(handler=cmd_recommend)

    serve = sub.add_parser("serve", help="serve a registered model over HTTP on loopback (default: the champion)")
    _model_args(serve)
    serve.add_argument("--port", type=int, default=5002)
    serve.set_defaults(handler=cmd_serve)

    ui = sub.add_parser("ui", help="serve the MLflow UI on loopback and print the link to an experiment's runs")
    ui.add_argument("experiment", nargs="?", default="experiments/variants.toml", help="whose runs to link to")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--print-only", action="store_true", help="print the link and exit (no server)")
    ui.set_defaults(handler=cmd_ui)

    report = sub.add_parser("report", help="write the research report of a finished sweep (never re-trains)")
    report.add_argument("experiment", help="the swept experiment's TOML")
    report.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    report.add_argument("--storage", help="the Optuna storage the sweep used (default: mlruns/optuna-journal.log)")
    report.add_argument("--out", default="reports", help="folder for reports/<experiment>/ (default: reports)")
    report.add_argument("--user", help="userId to show recommendations for (default: the first)")
    _across_args(report)
    report.set_defaults(handler=cmd_report)
    return parser


def _across_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--across",
        action="append",
        default=[],
        metavar="data.KEY=V1,V2",
        help="run under each setting (the product of every --across); replaces the file's [across]",
    )


def _model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="a model URI (default: models:/<experiment>.<study>@champion)")
    parser.add_argument("--experiment", default="variants", help="whose champion (default variants)")


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="an experiment TOML, e.g. experiments/seed_reproduction.toml")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set epochs=2 or --set runs.dot.n_factors=20",
    )
    parser.add_argument("--ratings", help="train on this ratings.csv (or folder, or zip) instead")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (overrides every run)")
    parser.add_argument("--summary", metavar="PATH", help="write a JSON summary for scripts")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or tables")


def cmd_variants(args: argparse.Namespace) -> int:
    from cfexp.variants.registry import REGISTRY

    for name, variant in REGISTRY.items():
        space = ", ".join(variant.space)
        print(f"{name:<18} {variant.description}\n{'':<18} init {variant.init}; searches {space}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from cfexp import api
    from cfexp.cli.progress import EpochProgress, print_comparison, print_history
    from cfexp.variants import get_variant

    experiment, dataset = load_inputs(args)
    bars = (lambda run: []) if args.quiet else (lambda run: [EpochProgress(run.name)])
    trained = api.train(experiment, dataset=dataset, track=True, callbacks=bars)
    if not args.quiet:
        for one in trained:
            print_history(one.run.name, one.result, get_variant(one.run.variant).epoch_metrics)
        print_comparison([(one.run, one.result) for one in trained])
        print(f"MLflow: {redact(track_uri())}, experiment {experiment.name!r}")
    if args.summary:
        records = [run_record(one.run, one.result, one.mlflow_run_id, _state(one.result)) for one in trained]
        write_summary(args.summary, experiment.name, dataset.summary(), records)
    return 0


def _state(result) -> str:
    return "FAIL" if result.status == "diverged" else "COMPLETE"


def track_uri() -> str:
    from cfexp.track import store

    return store.tracking_uri()


def cmd_sweep(args: argparse.Namespace) -> int:
    from cfexp.cli import sweep as sweep_command

    return sweep_command.main(args)


def cmd_synth(args: argparse.Namespace) -> int:
    from cfexp.data import synth

    started = time.perf_counter()
    written = synth.write(args.shape, Path(args.out), args.seed)
    print(
        f"wrote {args.out}: {written['ratings']:,} ratings, {written['users']:,} users, {written['movies']:,} movies "
        f"shaped like {args.shape} (seed {args.seed}) in {time.perf_counter() - started:.1f} s"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cfexp.evaluation import folds as evaluate

    return evaluate.main(args)


def cmd_recommend(args: argparse.Namespace) -> int:
    from cfexp.cli import recommend

    return recommend.main(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from cfexp.serve import server as serving

    return serving.main(args)


def cmd_ui(args: argparse.Namespace) -> int:
    from cfexp.cli import ui

    return ui.main(args)


def _report_across(args: argparse.Namespace, experiment, settings, store) -> int:
    from cfexp.across import report as across_report
    from cfexp.report.collect import Stores
    from cfexp.search import reconcile

    stores = Stores(store.storage)
    args.quiet, args.ratings, args.device = True, None, None  # what the settings' experiments are read with
    on_open = lambda name: reconcile.on_open(store, name)  # noqa: E731
    folder, run_id, _ = across_report.build(args, experiment.name, experiment.description, settings, stores, on_open)
    print(f"wrote {folder / 'index.html'} and {folder / 'report.md'}; logged to MLflow run {run_id}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from cfexp import track
    from cfexp.config.experiment import load_experiment
    from cfexp.report import build_report
    from cfexp.search import reconcile, study_store

    experiment = load_experiment(args.experiment, args.overrides)
    store = study_store.open_store(args.storage)
    if store.missing:
        raise UserError(f"no Optuna journal at {store.shown}: run cfexp sweep {args.experiment} first")
    settings = from_cli(args.across) if args.across else experiment.across
    if settings:
        return _report_across(args, experiment, settings, store)
    folder = build_report(
        experiment, store.storage, Path(args.out), args.user, lambda name: reconcile.on_open(store, name)
    )
    name = folder.name  # the experiment's name on these data (cfexp.data.key)
    tracker = track.Tracker(name)
    run_id = tracker.start_run("report", {}, {keys.EXPERIMENT: name, keys.ROLE: "report"})
    tracker.log_folder(run_id, folder, "report")
    tracker.finish(run_id, "COMPLETE")
    tracker.close()
    print(f"wrote {folder / 'index.html'} and {folder / 'report.md'}; logged to MLflow run {run_id}")
    return 0
