"""`cfexp sweep EXP` under several settings (`[across]`, or `--across data.KEY=V1,V2`): every setting is checked
first, then swept in turn as the experiment it would be alone (`cfexp sweep EXP --set data.KEY=V`, with the same
workers, stores and budgets), in this process.

A setting that cannot run (a release not fetched, a time split of a file without timestamps, implicit feedback
with no ranker) is refused in one line that names it, before anything is written. Each setting's sweep resumes as
any sweep does, so that a benchmark killed at any point and run again tops up the setting it was in and leaves
the finished ones as they are.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from cfexp.config.across_table import Setting, from_cli
from cfexp.errors import UserError
from cfexp.search.summary_document import json_safe, write_atomically


def settings_of(args: argparse.Namespace, experiment) -> tuple[Setting, ...]:
    """The settings asked for: `--across` on the command line, else the file's `[across]`; none inside a setting."""
    if getattr(args, "in_setting", None) or getattr(args, "worker_index", None) is not None:
        return ()
    return from_cli(args.across) if getattr(args, "across", None) else experiment.across


def run(args: argparse.Namespace, name: str, settings: tuple[Setting, ...], sweep_one) -> int:
    """Sweep every setting of experiment `name` in turn with `sweep_one(args)`; the benchmark's summary if asked."""
    from cfexp.across.settings import resolve

    planned = [resolve(args, setting) for setting in settings]  # every setting checked before anything is written
    names = "; ".join(f"{p.setting.label} ({p.experiment.name})" for p in planned)
    print(f"{len(planned)} settings: {names}", flush=True)
    started, done = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="cfexp-across-") as folder:
        for i, one in enumerate(planned, start=1):
            print(f"\n== setting {i} of {len(planned)}: {one.setting.label} ({one.experiment.name})", flush=True)
            one.args.summary = str(Path(folder) / f"{i}.json")
            began = time.perf_counter()
            code = sweep_one(one.args)
            if code:
                raise UserError(f"setting {one.setting.label} exited with {code}; rerun the same command to resume")
            summary = json.loads(Path(one.args.summary).read_text())
            done.append({"setting": one.setting.label, "values": dict(one.setting.values),
                         "experiment": one.experiment.name, "wall": time.perf_counter() - began,
                         "summary": summary})  # fmt: skip
    wall = time.perf_counter() - started
    if not args.quiet:
        walls = ", ".join(f"{d['setting']} {d['wall']:.1f} s" for d in done)
        print(f"\n{len(done)} settings swept in {wall:.1f} s: {walls}")
        print(f"next: cfexp report {args.experiment}{_across_flags(args)} writes the cross-setting report")
    if args.summary:
        document = {"experiment": name, "settings": done, "seconds": wall}
        write_atomically(Path(args.summary), json.dumps(json_safe(document), indent=2) + "\n")
    return 0


def _across_flags(args: argparse.Namespace) -> str:
    flags = "".join(f" --across {item}" for item in (args.across or []))
    return flags + "".join(f" --set {item}" for item in args.overrides)
