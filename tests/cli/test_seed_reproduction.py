"""The lesson's table, reproduced end to end through the CLI (about 10 s on a 2-core CPU)."""

import json

import pytest

from cfexp.cli.main import main

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)


def test_seed_reproduction_matches_the_lesson(workdir):
    assert main(["train", "experiments/seed_reproduction.toml", "--quiet", "--summary", "seed.json"]) == 0
    runs = {r["name"]: r for r in json.loads((workdir / "seed.json").read_text())["runs"]}
    dot, dbs = runs["dot"], runs["dot_bias_sigmoid"]
    # The lesson: dot 1.222 after 3 epochs and 1.132 after 6; dot+bias+sigmoid 0.806 and 0.794.
    assert abs(dot["history"][2]["val_loss"] - 1.222) < 0.03
    assert abs(dot["val_loss"] - 1.132) < 0.03
    assert abs(dbs["history"][2]["val_loss"] - 0.806) < 0.02
    assert abs(dbs["val_loss"] - 0.794) < 0.02
    assert dot["params"]["batch_size"] == 64 and dot["params"]["schedule"] == "3@0.1 → 3@0.01"
