"""Variants from the user's own files: an experiment's `variants_from` paths, imported once as it is loaded.

Each file calls `cfexp.variants.register` at import, so a variant lives in one module of the user's, outside cfexp;
every process that loads the experiment (helper workers, `cfexp evaluate`, `cfexp report`) imports it the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from cfexp.errors import UserError
from cfexp.system.redact import first_line


def module_name(path: Path) -> str:
    """A stable module name per file, so that a second load of the experiment does not import it again."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
    return f"cfexp_variants_{path.stem}_{digest}"


def import_variants(paths: list, base: Path, source: str) -> tuple[str, ...]:
    """Import each Python file (relative to the experiment's folder); returns their resolved paths."""
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise UserError(f"{source}: variants_from must be a list of Python file paths")
    found = []
    for raw in paths:
        path = Path(raw) if Path(raw).is_absolute() else base / raw
        if path.suffix != ".py" or not path.is_file():
            raise UserError(f"{source}: variants_from: no Python file at {path}")
        name = module_name(path)
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
                _pickle_by_value(module)
            except UserError:
                del sys.modules[name]
                raise
            except Exception as exc:  # the user's code: any failure is theirs to fix, said in one line
                del sys.modules[name]
                raise UserError(f"{source}: variants_from {path}: {type(exc).__name__}: {first_line(exc)}") from None
        found.append(str(path.resolve()))
    return tuple(found)


def _pickle_by_value(module) -> None:
    """The models cfexp logs pickle the variant's classes with them, so that they load where this file is absent."""
    import cloudpickle  # MLflow's own pickler for python models

    cloudpickle.register_pickle_by_value(module)
