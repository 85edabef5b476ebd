"""The helper workers of `cfexp sweep --workers N` as processes: started, told to go, waited for, stopped.

Kept apart from the scheduling (workers) and free of torch and optuna at import, so that the first worker starts
its helpers before its own heavy imports and the helpers' start-up overlaps its checks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cfexp.system import cpu_share


def helper_command(args, index: int, summary: str, device: str) -> list[str]:
    """The command line of worker `index`: this sweep's settings and its own summary file."""
    command = [sys.executable, "-m", "cfexp.cli", "sweep", args.experiment, "--quiet" if args.quiet else "--no-bars"]
    for override in args.overrides:
        command += ["--set", override]
    for flag in ("ratings", "storage", "trials", "timeout"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag}", str(value)]
    command += ["--device", device, "--workers", str(args.workers), "--worker-index", str(index)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return [*command, "--summary", summary]


def helper_env(index: int, device: str) -> dict[str, str]:
    """Worker `index`'s environment: one visible GPU each when the sweep runs on CUDA."""
    env = dict(os.environ)
    count = 0
    if device.startswith(("auto", "cuda")):
        import torch

        count = torch.cuda.device_count()
    if count:
        visible = env.get("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(count)))).split(",")
        env["CUDA_VISIBLE_DEVICES"] = gpu_for(index, visible, device)
    return env


def gpu_for(index: int, visible: list[str], device: str) -> str:
    """The GPU worker `index` gets: round robin over the visible ones (worker 0, this process, has the first), or
    the one `cuda:N` names for every worker."""
    if ":" in device:
        return visible[int(device.split(":")[1])]
    return visible[index % len(visible)]


def helper_device(device: str) -> str:
    """A helper sees its one GPU as cuda:0."""
    return "cuda" if device.startswith("cuda") else device


class Helpers:
    """The other workers' processes: started at once, told to go (or not), waited for, and stopped with this one.
    Each writes its summary into `folder`."""

    def __init__(self, args, device: str, folder: Path):
        self.files = [folder / f"w{i}.json" for i in range(1, args.workers)]
        self.processes = [
            subprocess.Popen(
                helper_command(args, i, str(path), helper_device(device)),
                env=helper_env(i, device),
                stdin=subprocess.PIPE,
                text=True,
            )
            for i, path in enumerate(self.files, start=1)
        ]
        for process in self.processes:
            cpu_share.register(process.pid)
        self.told = False

    def go(self) -> None:
        """Everything is checked and the stores exist: start working."""
        for process in self.processes:
            process.stdin.write("go\n")
            process.stdin.close()
        self.told = True

    def stop(self) -> None:
        """The sweep was refused or interrupted: helpers not yet told leave quietly, the others are interrupted as
        this process is (a terminal's Ctrl-C reaches them anyway; a `kill` of this process does not)."""
        for process in self.processes:
            if not self.told:
                process.stdin.close()
            elif process.poll() is None:
                process.send_signal(signal.SIGINT)
        self.wait()

    def wait(self) -> list[int]:
        return [p.wait() for p in self.processes]

    def summaries(self) -> list[dict]:
        """Each helper's summary, as soon as it is written (a helper's last act, after which Python's teardown of
        torch and MLflow takes it a second or two that this process need not wait for) or the helper has ended."""
        while any(p.poll() is None and not f.exists() for p, f in zip(self.processes, self.files, strict=True)):
            time.sleep(0.05)
        return [json.loads(path.read_text()) for path in self.files if path.exists()]


def wait_for_go() -> bool:
    """In a helper: block until the first worker says go (True), or says nothing and closes (False)."""
    return sys.stdin.readline().strip() == "go"
