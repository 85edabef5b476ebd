"""cfexp: a research harness for collaborative-filtering experiments.

From a notebook: `cfexp.load_ratings()`, `cfexp.load_experiment(path)`, `cfexp.train(...)`, `cfexp.table(...)`,
`cfexp.sweep(path)`, `cfexp.evaluate(path)`, `cfexp.benchmark(path, [...])` and `cfexp.champion()` (cfexp.api;
docs/notebook.md). They are imported
on first use, so that `import cfexp` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

API = ("TrainedRun", "benchmark", "champion", "evaluate", "load_experiment", "load_ratings", "sweep", "table", "train")
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from cfexp import api

        return getattr(api, name)
    raise AttributeError(f"module 'cfexp' has no attribute {name!r}")
