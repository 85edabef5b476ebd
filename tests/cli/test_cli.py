import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cfexp.cli.main import main

SMALL_TRAIN = ["--set", "schedule=[[2, 0.05]]", "--set", "n_factors=8", "--set", "device='cpu'"]


def test_data_prints_the_summary_and_writes_the_crosstab(workdir, capsys):
    assert main(["data", "--crosstab", "out/ct.csv"]) == 0
    out = capsys.readouterr().out
    assert "100004" in out and "671" in out and "9066" in out
    table = pd.read_csv(workdir / "out/ct.csv", index_col=0)
    assert table.loc[15, ["1", "110", "260"]].tolist() == [2.0, 3.0, 5.0]


def test_train_on_a_small_slice_writes_the_summary(workdir, small_dir, capsys):
    code = main(
        [
            "train",
            "experiments/seed_reproduction.toml",
            "--ratings",
            str(small_dir),
            "--summary",
            "out/summary.json",
            *SMALL_TRAIN,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "dot_bias_sigmoid" in out and "val_loss" in out
    summary = json.loads((workdir / "out/summary.json").read_text())
    assert summary["experiment"] == "seed_reproduction"
    assert summary["dataset"]["ratings"] == 3000
    assert [r["name"] for r in summary["runs"]] == ["dot", "dot_bias_sigmoid"]
    for run in summary["runs"]:
        assert {
            "name",
            "variant",
            "params",
            "history",
            "val_loss",
            "best_val_loss",
            "seconds",
            "state",
            "mlflow_run_id",
        } <= set(run)
        assert [h["epoch"] for h in run["history"]] == [0, 1]
        assert run["params"]["n_factors"] == 8 and run["params"]["epochs"] == 2
        assert run["state"] == "COMPLETE"
    assert summary["runs"][1]["params"]["init"] == "constant(0.01)"
    assert summary["best"]["best_val_loss"] == min(r["best_val_loss"] for r in summary["runs"])


BAD_INPUTS = [
    (["train", "experiments/missing.toml"], "experiment file not found"),
    (
        ["train", "experiments/seed_reproduction.toml", "--set", "runs.dot.variant='svd'"],
        "unknown variant 'svd'",
    ),
    (["train", "experiments/seed_reproduction.toml", "--set", "lr=-0.1"], "finite lr > 0"),
    (["train", "experiments/seed_reproduction.toml", "--set", "n_factors=0"], "n_factors must be >= 1"),
    (["train", "experiments/seed_reproduction.toml", "--set", "batchsize=3"], "did you mean 'batch_size'"),
    (["train", "experiments/seed_reproduction.toml", "--set", "runs.dot.init='uniform(1)'"], "bad init"),
    (
        ["train", "experiments/seed_reproduction.toml", "--set", "data.val_pct=1.5"],
        "val_pct must be in (0, 1)",
    ),
    (["train", "experiments/seed_reproduction.toml", "--ratings", "nowhere.csv"], "ratings not found"),
    (["train", "experiments/seed_reproduction.toml", "--device", "cuda:7"], "cuda:7"),
    (["data", "--ratings", "nowhere.csv"], "ratings not found"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_on_stderr_and_writes_nothing(workdir, capsys, argv, message):
    code = main([*argv, "--summary", "out/summary.json"] if argv[0] == "train" else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("cfexp: error: ") and message in err
    assert not (workdir / "out").exists()


def test_broken_toml_and_missing_column_through_the_real_command(workdir, tmp_path):
    broken = workdir / "experiments/broken.toml"
    broken.write_text("[train\nbatch_size = 64\n")
    (tmp_path / "r.csv").write_text("userId,rating\n1,4.0\n2,3.0\n")
    for argv, message in [
        (["train", str(broken)], "invalid TOML"),
        (
            ["train", "experiments/seed_reproduction.toml", "--ratings", str(tmp_path / "r.csv")],
            "missing column",
        ),
    ]:
        proc = subprocess.run([sys.executable, "-m", "cfexp.cli", *argv], capture_output=True, text=True, cwd=workdir)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1 and message in proc.stderr
        assert "Traceback" not in proc.stderr


def test_variants_lists_the_registry(capsys):
    assert main(["variants"]) == 0
    out = capsys.readouterr().out
    for name in ("dot", "dot_bias", "dot_bias_sigmoid", "nn"):
        assert name in out


def test_experiments_folder_parses():
    from cfexp.config.experiment import load_experiment

    for path in Path(__file__).parents[2].joinpath("experiments").glob("*.toml"):
        assert load_experiment(path).runs or path.stem != "seed_reproduction"
