"""`make bench-scale`'s 25M sweep: `cfexp sweep experiments/ml-25m.toml` as a user runs it, measured from outside."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCALE_EXPERIMENT = Path("experiments", "ml-25m.toml").resolve()  # found from the repository's root, as make runs


def measure_sweep(path: str, device: str = "cpu") -> dict:
    """`cfexp sweep experiments/ml-25m.toml` on the file, as `make sweep` runs an experiment (two workers), in a
    fresh folder (fresh stores): its wall, each process's peak memory (sampled every half second; the largest
    exactly, from the kernel's count), and each study's best trial and test figures."""
    import psutil

    command = [
        sys.executable,
        "-m",
        "cfexp.cli",
        "sweep",
        str(SCALE_EXPERIMENT),
        "--ratings",
        str(Path(path).resolve()),
    ]
    command += ["--workers", "2", "--device", device, "--quiet", "--summary", "summary.json"]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peaks: dict[int, float] = {}
        while proc.poll() is None:
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
                for p in tree:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.5)
        wall = time.perf_counter() - started
        error = proc.stderr.read()
        if proc.returncode:
            return {"error": (error.strip().splitlines() or ["failed"])[-1]}
        summary = json.loads((Path(tmp) / "summary.json").read_text())
    keys = ("study", "variant", "objective", "best_value", "test_loss", "test_rmse", "test_ndcg_at_10", "params")
    return {
        "wall": wall,
        "largest_process_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "process_peaks_mb": sorted(peaks.values(), reverse=True),
        "final_seconds": summary.get("final_seconds"),
        "dataset": {k: summary["dataset"].get(k) for k in ("ratings", "users", "movies", "split")},
        "studies": [{k: row.get(k) for k in keys} | {"trials": row.get("complete")} for row in summary["studies"]],
    }
