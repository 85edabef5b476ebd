"""The cross-setting report: `reports/<experiment>-across/` (report.md, index.html, the matrices as CSV, the
figures), read from the stores, and one MLflow parent run for the whole benchmark that holds them, with a child
run per setting tagged with that setting's experiment, so that the MLflow UI leads from the benchmark to every
setting's runs."""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path

import pandas as pd

from cfexp import keys, track
from cfexp.across import conclusions, figures, matrix, stats
from cfexp.config.across_table import Setting
from cfexp.report.collect import Stores
from cfexp.report.sections import Section, fmt, md_table, write_page

ROLE = "benchmark"  # the parent run's cfexp.role


def build(
    args: argparse.Namespace, name: str, description: str, settings: tuple[Setting, ...], stores: Stores, on_open=None
):
    """Write the cross-setting report of experiment `name` and log it; (folder, parent run id, long frame).
    `on_open(experiment)` is called for each setting's experiment before its stores are read (the CLI reconciles)."""
    results = matrix.collect(args, settings, stores, on_open)
    k = results[0].experiment.eval.k
    frame = matrix.long_frame(results, k)
    folder = Path(args.out) / f"{name}-across"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    frame.to_csv(folder / "matrix.csv", index=False)
    sections = [settings_section(results)]
    floors = dict(zip(frame.study, frame.floor, strict=True))
    for figure, lower, words in (("test_mse", True, "test MSE"), ("test_ndcg", False, f"test NDCG@{k}")):
        sections += matrix_sections(frame, figure, lower, words, floors, folder)
    findings = conclusions.findings(results, frame, k)
    sections.append(conclusions_section(findings))
    sections.append(reproduce_section(args, name, results))
    write_page(folder, f"cfexp report: {name} across {len(results)} settings", description, sections)
    run_id = log(name, results, frame, findings, folder)
    return folder, run_id, frame


def settings_section(results) -> Section:
    s = Section("The settings")
    s.add(
        "Each setting is the experiment it would be alone, with its own studies, MLflow experiment, final models "
        "and champion; each figure below is a study's final model scored once on that setting's own test split."
    )
    rows = [["setting", "experiment", "ratings", "train / validation / test", "cold test rows", "studies"]]
    for r in results:
        sizes = r.dataset.split.sizes()
        cold = r.dataset.cold().get("test")
        rows.append(
            [
                r.label,
                f"`{r.experiment.name}`",
                f"{len(r.dataset.ratings.frame):,}",
                f"{sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,}",
                f"{cold['rows']:,} of {cold['of_rows']:,}" if cold else "-",
                f"{len(r.tested())} of {len(r.studies)} tested",
            ]
        )
    s.add(md_table(rows))
    return s


def matrix_sections(frame, figure: str, lower: bool, words: str, floors: dict, folder: Path) -> list[Section]:
    wide = matrix.matrix(frame, figure)
    if wide.empty:
        return []
    ranked = matrix.ranks(wide, lower)
    slug = figure.removeprefix("test_")
    ranked.to_csv(folder / f"ranks_{slug}.csv")
    s = Section(f"Studies × settings by {words}")
    s.add(
        f"Each cell: the study's {words} in the setting, and its rank there in brackets (1: the "
        f"{'lowest' if lower else 'highest'}); rows by mean rank. Floors are the variants declared as yardsticks."
    )
    rows = [["study", *wide.columns, "mean rank"]]
    for study in ranked.index:
        label = f"{study} (floor: {floors[study]})" if floors.get(study) else study
        cells = [f"{fmt(wide.loc[study, c])} ({ranked.loc[study, c]:g})" for c in wide.columns]
        rows.append([label, *cells, f"{ranked.loc[study, 'mean rank']:.2f}"])
    s.add(md_table(rows))
    s.figure(figures.rank_heatmap(ranked, floors, f"Rank by {words}", folder / f"ranks_{slug}.png"), "Ranks")
    test = stats.friedman(wide, lower)
    s.add(test.sentence(words))
    if test.ran:
        mean_ranks = ranked["mean rank"]
        path = folder / f"cd_{slug}.png"
        s.figure(figures.cd_diagram(mean_ranks, test.nemenyi, test.cd, f"Critical difference, {words}", path), "CD")
    return [s]


def conclusions_section(findings) -> Section:
    s = Section("Which conclusions hold")
    s.add(
        "Each conclusion a single setting's report states, read off every setting's own table. Significant: the "
        "paired permutation test over that setting's test users (test MSE, or test NDCG per user) against the "
        "runner-up, p < 0.05."
    )
    s.add("\n".join(f"- {finding.sentence()}" for finding in findings) or "No study has a final model yet.")
    return s


def reproduce_section(args, name: str, results) -> Section:
    flags = "".join(f" --across {item}" for item in args.across or [])
    s = Section("Reproduce")
    s.add(f"`cfexp sweep {args.experiment}{flags}`, then `cfexp report {args.experiment}{flags}`.")
    s.add(md_table([["setting", "MLflow experiment"]] + [[r.label, f"`{r.experiment.name}`"] for r in results]))
    return s


def log(name: str, results, frame: pd.DataFrame, findings, folder: Path) -> str:
    """The benchmark's MLflow parent run (experiment `<name>-across`) and a child run per setting."""
    tracker = track.Tracker(f"{name}-across")
    tags = {keys.EXPERIMENT: name, keys.ROLE: ROLE, "mlflow.note.content": _note(results, findings)}
    for i, r in enumerate(results):
        tags[f"cfexp.setting.{i}"] = f"{r.label} → {r.experiment.name}"
    params = {"settings": len(results), **{f"setting.{i}": r.label for i, r in enumerate(results)}}
    parent = tracker.start_run("benchmark", params, tags)
    for r in results:
        rows = frame[frame.setting == r.label]
        metrics = {}
        for row in rows.itertuples():
            for figure in ("test_mse", "test_ndcg"):
                value = getattr(row, figure)
                if not math.isnan(value):
                    metrics[f"{row.study}.{figure}"] = float(value)
        child_tags = {keys.EXPERIMENT: r.experiment.name, keys.ROLE: "setting", "cfexp.experiment_id": r.experiment_id}
        child = tracker.start_run(r.label, dict(r.setting.values), child_tags, parent_id=parent)
        tracker.log_metrics(child, metrics)
        tracker.finish(child, "COMPLETE")
    tracker.log_folder(parent, folder, "report")
    tracker.finish(parent, "COMPLETE")
    tracker.close()
    return parent


def _note(results, findings) -> str:
    """The parent run's description in the MLflow UI: a link to every setting's runs, then the conclusions."""
    links = [
        f"- [{r.label}](#/experiments/{r.experiment_id}?workflowType=machine_learning): `{r.experiment.name}`"
        for r in results
    ]
    return "\n".join(["Settings:", *links, "", "Conclusions:", *(f"- {f.sentence()}" for f in findings)])
