"""Each sweep process's share of this machine's cores for torch: the cores ÷ the sweeps running here, or --threads.

Every sweep process registers itself in a folder of this machine's temporary directory while it runs. Before each
trial it counts the live registrations (a dead process's file is removed) and takes its share, so a second sweep
started on the same machine makes the first drop to its half at its next trial, and the first one's end gives
the cores back. torch's results on the CPU do not depend on the thread count here (checked: same val MSE to the
last digit at 1 and 2 threads), so a share changes speed, not results.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cfexp.system.processes import is_alive, process_record, this_process

REGISTRY = Path(tempfile.gettempdir()) / f"cfexp-{os.getuid() if hasattr(os, 'getuid') else 'user'}" / "sweeps"


def register(pid: int, registry: Path = REGISTRY) -> None:
    """Count another process (a worker just started) as a sweep here before it registers itself."""
    registry.mkdir(parents=True, exist_ok=True)
    (registry / f"{pid}.json").write_text(json.dumps(process_record(pid)))


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class CpuShare:
    """This process's registration and thread count; `threads` fixes the count instead (--threads)."""

    def __init__(self, threads: int | None = None, registry: Path = REGISTRY):
        self.fixed = threads
        self.registry = registry
        self.entry = registry / f"{os.getpid()}.json"
        registry.mkdir(parents=True, exist_ok=True)
        self.entry.write_text(json.dumps(this_process()))

    def live(self) -> int:
        """Sweep processes running on this machine now, this one included."""
        count = 0
        for path in self.registry.glob("*.json"):
            try:
                alive = is_alive(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue  # being written, or just removed
            if alive:
                count += 1
            else:
                path.unlink(missing_ok=True)
        return max(count, 1)

    def threads(self) -> int:
        return self.fixed or max(1, cores() // self.live())

    def apply(self) -> int:
        """Set torch's intra-op threads to this process's share, before a trial; returns it."""
        import torch  # here: registering a helper must not wait for torch's import

        count = self.threads()
        if torch.get_num_threads() != count:
            torch.set_num_threads(count)
        return count

    def close(self) -> None:
        self.entry.unlink(missing_ok=True)

    def __enter__(self) -> CpuShare:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
