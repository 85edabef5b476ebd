"""Chaos for the two stores: real `cfexp sweep` processes killed with SIGKILL at seeded moments, then one clean run,
then both stores checked through Optuna's and MLflow's own APIs. Used by the e2e test and by `make bench-chaos`.

A kill lands either at a named instant of a trial's life (cfexp.system.faults: the process stops itself there and is
killed from here) or after a random delay. With `--workers 2` the stopped process is killed first and its whole process
group a moment later, as an operator's `kill` and then the kernel's would.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from cfexp.system import faults

TRIAL_PHASES = ("claim", "run", "training", "ranking", "logging", "told")
LATE_PHASES = ("final", "summary", "registration")  # reached once a study's (or the sweep's) trials are done
MAX_COUNT = {"training": 4, "logging": 12, "final": 1, "summary": 2, "registration": 2}  # else 2

EXPERIMENT = """
name = "{name}"

[data]
ratings = "{ratings}"
test_pct = 0.2

[train]
optimizer = "sgd"
batch_size = 256
schedule = [[3, 0.5]]
n_factors = 8
device = "cpu"

[sweep]
trials = {trials}
pruner = "none"

[sweep.space]
n_factors = {{ low = 4, high = 16, log = true }}
lr = {{ low = 0.2, high = 0.8, log = true }}
weight_decay = false

[[sweep.variants]]
name = "sig"
variant = "dot_bias_sigmoid"
enqueue = [{{ lr = 0.5, n_factors = 12 }}]

[[sweep.variants]]
name = "dot"
variant = "dot"
"""


@dataclass
class Kill:
    what: str  # "claim:2", "after 3.1 s", ...
    workers: int
    killed: bool  # False: the sweep ended before the moment came
    seconds: float


@dataclass
class Chaos:
    """A folder with an experiment TOML, swept again and again under SIGKILL."""

    folder: Path
    experiment: str  # the TOML, relative to folder
    seed: int = 0
    env: dict = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # more `cfexp sweep` options, e.g. --trials
    kills: list[Kill] = field(default_factory=list)

    def __post_init__(self):
        self.rng = random.Random(self.seed)

    def start(self, workers: int, pause_at: str | None = None) -> subprocess.Popen:
        command = [sys.executable, "-m", "cfexp.cli", "sweep", self.experiment, "--quiet", "--workers", str(workers)]
        command += self.args
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", faults.ENV)} | self.env
        if pause_at:
            env[faults.ENV] = pause_at
        with (self.folder / "chaos.log").open("a") as log:
            log.write(f"--- {pause_at or 'run'} workers={workers}\n")
        log = (self.folder / "chaos.log").open("a")
        return subprocess.Popen(command, cwd=self.folder, env=env, stdout=log, stderr=log, start_new_session=True)

    def kill_at(self, phase: str, workers: int, timeout: float = 120, count: int | None = None) -> Kill:
        """Sweep until a process reaches the n-th instance of `phase` (n drawn here unless given), then kill it and
        its group."""
        count = count or self.rng.randint(1, MAX_COUNT.get(phase, 2))
        started = time.monotonic()
        process = self.start(workers, f"{phase}:{count}")
        stopped = wait_for_stop(process, timeout)
        if stopped is not None:
            stopped.send_signal(signal.SIGKILL)
            time.sleep(self.rng.uniform(0.0, 0.5) if workers > 1 else 0.0)
        killed = stopped is not None
        return self._record(process, f"{phase}:{count}", workers, killed, started)

    def kill_after(self, low: float, high: float, workers: int) -> Kill:
        """Kill one process of the sweep (the first worker or a helper, drawn), then its group, after a delay."""
        delay = self.rng.uniform(low, high)
        started = time.monotonic()
        process = self.start(workers)
        try:
            process.wait(timeout=delay)
            return self._record(process, f"after {delay:.1f} s", workers, False, started)
        except subprocess.TimeoutExpired:
            pass
        victims = [psutil.Process(process.pid), *_children(process)]
        with _gone_ok():
            self.rng.choice(victims).send_signal(signal.SIGKILL)
        time.sleep(self.rng.uniform(0.0, 1.0))
        return self._record(process, f"after {delay:.1f} s", workers, True, started)

    def _record(self, process: subprocess.Popen, what: str, workers: int, killed: bool, started: float) -> Kill:
        with _gone_ok():
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        kill = Kill(what, workers, killed, time.monotonic() - started)
        self.kills.append(kill)
        return kill

    def clean_run(self, workers: int = 1, timeout: float = 600) -> int:
        process = self.start(workers)
        try:
            return process.wait(timeout=timeout)
        finally:
            with _gone_ok():
                os.killpg(process.pid, signal.SIGKILL)

    def schedule(self, instants: int) -> list[str]:
        """Every trial phase once (in a drawn order), then the late phases, then `instants` random delays."""
        trial = list(TRIAL_PHASES)
        self.rng.shuffle(trial)
        return trial + list(LATE_PHASES) + ["delay"] * instants

    def run(self, instants: int = 2) -> list[Kill]:
        """The schedule, each kill with or without a helper worker (drawn); a phase not reached is tried again."""
        for phase in self.schedule(instants):
            for _attempt in range(3):
                workers = self.rng.choice((1, 1, 2))  # a helper on two cores slows each start
                kill = self.kill_after(1.0, 6.0, workers) if phase == "delay" else self.kill_at(phase, workers)
                if kill.killed:
                    break
        return self.kills


def wait_for_stop(process: subprocess.Popen, timeout: float) -> psutil.Process | None:
    """The first process of the sweep's group to stop itself (SIGSTOP), or None when the sweep ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for candidate in [psutil.Process(process.pid), *_children(process)]:
            with _gone_ok():
                if candidate.status() == psutil.STATUS_STOPPED:
                    return candidate
        time.sleep(0.02)
    return None


def _children(process: subprocess.Popen) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        return []


class _gone_ok:
    """Ignore a process that is already gone."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, ProcessLookupError | psutil.Error)


def write_experiment(folder: Path, name: str, ratings: str, trials: int) -> str:
    path = folder / "experiments" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(EXPERIMENT.format(name=name, ratings=ratings, trials=trials))
    return str(path.relative_to(folder))
