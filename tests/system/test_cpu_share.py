"""Each sweep process takes its share of the cores: the cores ÷ the sweeps running on this machine, or --threads."""

import subprocess
import sys

import torch

from cfexp.system.cpu_share import CpuShare, cores

OTHER_SWEEP = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from cfexp.system.cpu_share import CpuShare\n"
    "share = CpuShare(registry=Path(sys.argv[1]))\n"
    "print('registered', flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_second_sweep_halves_the_share_and_its_death_gives_it_back(tmp_path):
    registry = tmp_path / "sweeps"
    with CpuShare(registry=registry) as mine:
        assert mine.live() == 1 and mine.threads() == cores()
        other = subprocess.Popen([sys.executable, "-c", OTHER_SWEEP, str(registry)], stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout.readline().strip() == "registered"
            assert mine.live() == 2 and mine.threads() == max(1, cores() // 2)
        finally:
            other.kill()  # SIGKILL: its registration is left behind
            other.wait()
        assert mine.live() == 1 and mine.threads() == cores()
        assert len(list(registry.glob("*.json"))) == 1  # the dead one's entry was removed
    assert not list(registry.glob("*.json"))


def test_threads_fixes_the_count(tmp_path):
    before = torch.get_num_threads()
    try:
        with CpuShare(threads=3, registry=tmp_path) as share:
            assert share.apply() == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_sweep_refuses_zero_threads(workdir, capsys):
    from cfexp.cli.main import main

    assert main(["sweep", "experiments/variants.toml", "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
