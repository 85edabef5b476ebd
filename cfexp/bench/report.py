"""BENCHMARKS.md: each suite rewrites its own part from one run's measurements and keeps the others' parts."""

from __future__ import annotations

from pathlib import Path

from cfexp.bench import docs
from cfexp.bench.across import across_section
from cfexp.bench.autoencoders import vaes_section
from cfexp.bench.chaos_soak import chaos_section
from cfexp.bench.default_report import default_section
from cfexp.bench.floors import floors_section
from cfexp.bench.item_models import item_models_section
from cfexp.bench.protocol import protocol_section
from cfexp.bench.protocols import protocols_section
from cfexp.bench.samplers import samplers_section
from cfexp.bench.scale_report import gpu_section, scale_section

SECTIONS = {  # each suite's part, in the order of the parts in the file
    "default": default_section,
    "protocol": lambda r: [*protocol_section(r), *protocols_section(r)],
    "floors": lambda r: [*floors_section(r), *item_models_section(r), *vaes_section(r)],
    "samplers": samplers_section,
    "across": across_section,
    "scale": scale_section,
    "gpu": gpu_section,
    "chaos": chaos_section,
}
INTRO = (
    "# Benchmarks\n\nWritten by `make bench` (`python -m cfexp.bench`), `make bench-scale` (`python -m cfexp.bench "
    "--suite scale`), `make bench-gpu` (`--suite gpu`), `make bench-chaos` (`--suite chaos`) and `make benchmark` "
    "(`--suite across`); each rewrites its "
    "own part below. Every figure in a "
    "part comes from one run on one machine, each measurement in its own process (its peak resident memory is its "
    "own). These machines are noisy: compare ratios within a run, not across runs.\n"
)


def write_benchmarks(path: Path, suite: str, r: dict, machine: str, when: str) -> None:
    """Rewrite `suite`'s part of BENCHMARKS.md, keeping the other suites' parts as they are."""
    header = [f"Machine: {machine}. Measured {when}.", ""]
    body = SECTIONS[suite](r)
    parts = _parts(path.read_text(encoding="utf-8") if path.exists() else "")
    parts[suite] = "\n".join([f"<!-- suite: {suite} -->", *header, *body, f"<!-- /suite: {suite} -->"])
    ordered = [parts[name] for name in SECTIONS if name in parts]
    path.write_text(INTRO + "\n" + "\n\n".join(ordered) + "\n", encoding="utf-8")
    if path.name == "BENCHMARKS.md":  # the pages beside it quote it; a copy written elsewhere (--out) leaves them be
        docs.sync(path.parent)


def _parts(text: str) -> dict[str, str]:
    """Each suite's part of an existing BENCHMARKS.md, markers included."""
    found = {}
    for name in SECTIONS:
        start, end = text.find(f"<!-- suite: {name} -->"), text.find(f"<!-- /suite: {name} -->")
        if start >= 0 and end > start:
            found[name] = text[start : end + len(f"<!-- /suite: {name} -->")]
    return found
