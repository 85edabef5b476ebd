"""The `--summary PATH` JSON document for scripts (field names are a contract: add, never rename)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def run_record(run, result, mlflow_run_id: str | None = None, state: str | None = None, reason: str = "") -> dict:
    """One run (a RunConfig and its FitResult, which may be None if it broke before training)."""
    from cfexp.variants import runner  # torch: imported when a run is recorded, so that `cfexp --help` starts at once

    diverged = result is not None and result.status == "diverged"
    record = {
        "name": run.name,
        "variant": run.variant,
        "params": runner.params(run),
        "history": result.history if result else [],
        "val_loss": result.val_loss if result else math.nan,
        "best_val_loss": result.best_val_loss if result else math.nan,
        "seconds": result.seconds if result else 0.0,
        "state": state or ("FAIL" if diverged else "COMPLETE"),
        "mlflow_run_id": mlflow_run_id,
    }
    reason = reason or (result.reason if result else "")
    if reason:
        record["reason"] = reason
    if result is not None and result.test_loss is not None:
        record["test_loss"] = result.test_loss
    if result is not None and result.ranking:
        record["ranking"] = result.ranking
    return record


def write_summary(path: str | Path, experiment: str, dataset: dict, records: list[dict], **extra) -> None:
    """`best` is the run with the lowest val MSE, unless the caller names it (a sweep: its champion)."""
    if "best" not in extra:
        # a ranking-only run has no MSE (NaN here, null in a worker's summary read back)
        finished = [r for r in records if r["state"] == "COMPLETE" and math.isfinite(r["best_val_loss"] or math.nan)]
        extra["best"] = min(finished, key=lambda r: r["best_val_loss"]) if finished else None
    document = {"experiment": experiment, "dataset": dataset, "runs": records, **extra}
    write_atomically(Path(path), json.dumps(json_safe(document), indent=2) + "\n")


def json_safe(value):
    """NaN and infinities become null: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(fh.name, path)


def champion_record(rows: list[dict], records: list[dict]) -> dict | None:
    """The sweep's champion (the study with the lowest val MSE: selected on validation) as a run record, with its
    final model's test figures (`test_loss`, `test_rmse`, `test_mae`, `test_ranking`) beside the validation ones."""
    rated = [row for row in rows if row.get("best_val_loss") is not None]
    if not rated:
        return None
    row = min(rated, key=lambda r: r["best_val_loss"])
    run_id = row.get("mlflow_run_id")
    record = next((r for r in records if r.get("mlflow_run_id") == run_id), None)
    if record is None:  # a trial of an earlier sweep (or another machine): what the study holds of it
        record = {
            "name": f"{row['study'].split('/')[-1]}-t{row.get('trial')}",
            "variant": row["variant"],
            "params": row["params"],
        }
        record.update({"history": [], "val_loss": row["best_val_loss"], "seconds": None, "state": "COMPLETE"})
        record["mlflow_run_id"] = run_id
    tests = {k: v for k, v in row.items() if k.startswith("test_")}
    ranking = {k[5:]: v for k, v in tests.items() if "_at_" in k or k == "test_ranked_users"}
    return {
        **record,
        "study": row["study"],
        "best_val_loss": row["best_val_loss"],
        "test_loss": tests.get("test_loss"),
        "test_rmse": tests.get("test_rmse"),
        "test_mae": tests.get("test_mae"),
        "test_ranking": ranking,
        "final_run_id": row.get("final_run_id"),
    }
