"""A tiny real sweep into temporary stores, read back through MLflow's and Optuna's own APIs."""

import json

import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from tiny import TINY

from cfexp.cli.main import main
from cfexp.track import default_uri

pytestmark = pytest.mark.e2e  # real sweeps and stores: minutes (make test-fast leaves it out)


@pytest.fixture()
def tiny(workdir, small_dir):
    path = workdir / "experiments" / "tiny.toml"
    path.write_text(TINY.format(ratings=small_dir))
    return path


def sweep(path, *extra):
    return main(["sweep", str(path), "--quiet", "--summary", "summary.json", *extra])


def client_and_runs():
    mlflow.set_tracking_uri(default_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    return client, client.search_runs([experiment.experiment_id], max_results=1000)


def journal():
    backend = optuna.storages.journal.JournalFileBackend("mlruns/optuna-journal.log")
    return optuna.storages.JournalStorage(backend)


def test_tiny_sweep_lands_in_mlflow_and_optuna(tiny, workdir):
    assert sweep(tiny) == 0
    client, runs = client_and_runs()
    parents = [r for r in runs if r.data.tags.get("cfexp.role") == "study"]
    assert sorted(r.data.tags["optuna.study"] for r in parents) == ["tiny/dot", "tiny/sig"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 7 and len(runs) == 9
    for child in children:
        parent = next(p for p in parents if p.info.run_id == child.data.tags["mlflow.parentRunId"])
        assert child.data.tags["cfexp.variant"] == parent.data.tags["cfexp.variant"]
        assert child.info.run_name == f"{parent.info.run_name}-t{child.data.tags['optuna.trial']}"
        assert {"git.commit", "dataset.digest", "cfexp.experiment", "optuna.study"} <= set(child.data.tags)
        assert {
            "variant",
            "init",
            "n_factors",
            "lr",
            "weight_decay",
            "optimizer",
            "batch_size",
            "epochs",
            "schedule",
            "seed",
            "device",
        } <= set(child.data.params)
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"config.json", "history.csv", "learning_curve.png"} <= artifacts
        assert client.get_run(child.info.run_id).inputs.dataset_inputs

    completes = [c for c in children if c.data.tags["optuna.state"] == "COMPLETE"]
    assert completes and all(c.info.status == "FINISHED" for c in completes)
    for child in completes:
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "val_loss")]
        assert steps == [0, 1]
        for key in ("train_loss", "val_rmse", "val_mae"):
            assert len(client.get_metric_history(child.info.run_id, key)) == 2
        assert "best_val_loss" in child.data.metrics

    # The study store agrees with the tracking store.
    storage = journal()
    for parent in parents:
        study = optuna.load_study(study_name=parent.data.tags["optuna.study"], storage=storage)
        states = [t.state for t in study.trials]
        assert states.count(optuna.trial.TrialState.COMPLETE) + states.count(optuna.trial.TrialState.PRUNED) == 3
        assert parent.info.status == "FINISHED"
        best = study.best_trial
        assert parent.data.metrics["best_val_loss"] == pytest.approx(best.value)
        assert parent.data.tags["best.mlflow_run_id"] == best.user_attrs["mlflow_run_id"]
        assert {a.path for a in client.list_artifacts(parent.info.run_id, "optuna")} >= {
            "optuna/optimization_history.png"
        }
        model = mlflow.pyfunc.load_model(f"runs:/{best.user_attrs['mlflow_run_id']}/model")
        prediction = model.predict(pd.DataFrame({"userId": [1, 1, 10**9], "movieId": [31, 1029, 1]}))
        assert np.isfinite(prediction[:2]).all() and np.isnan(prediction[2])

    summary = json.loads((workdir / "summary.json").read_text())
    assert len(summary["runs"]) == 7 and {s["study"] for s in summary["studies"]} == {"tiny/dot", "tiny/sig"}
    assert summary["best"]["state"] == "COMPLETE"


def test_pruned_and_diverged_trials_end_in_the_right_states(tiny):
    assert sweep(tiny) == 0
    _, runs = client_and_runs()
    by_trial = {
        r.data.tags["optuna.trial"]: r
        for r in runs
        if r.data.tags.get("optuna.study") == "tiny/sig" and "mlflow.parentRunId" in r.data.tags
    }
    assert by_trial["0"].data.tags["optuna.state"] == "COMPLETE" and by_trial["0"].info.status == "FINISHED"
    assert by_trial["1"].data.tags["optuna.state"] == "PRUNED" and by_trial["1"].info.status == "FINISHED"
    assert by_trial["2"].data.tags["optuna.state"] == "FAIL" and by_trial["2"].info.status == "FAILED"
    assert "diverged" in by_trial["2"].data.tags["cfexp.fail_reason"]
    study = optuna.load_study(study_name="tiny/sig", storage=journal())
    states = [t.state.name for t in study.trials]
    assert states[:3] == ["COMPLETE", "PRUNED", "FAIL"]
    assert len(states) == 4 and states[3] != "FAIL"  # the failure did not use up the budget


def test_rerun_tops_the_study_up_to_its_budget(tiny):
    assert sweep(tiny, "--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]") == 0
    assert sweep(tiny, "--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]", "--trials", "5") == 0
    study = optuna.load_study(study_name="tiny/dot", storage=journal())
    assert len(study.trials) == 5
    _, runs = client_and_runs()
    parents = [r for r in runs if r.data.tags.get("cfexp.role") == "study"]
    assert len(parents) == 1
    assert len([r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]) == 5
    assert sweep(tiny, "--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]", "--trials", "5") == 0
    assert len(optuna.load_study(study_name="tiny/dot", storage=journal()).trials) == 5


def test_bad_sweep_input_touches_no_store(tiny, workdir, capsys):
    cases = [
        (["--set", "sweep.pruner='sometimes'"], "pruner must be one of"),
        (["--set", "sweep.space.lr={low = -1, high = 1, log = true}"], "log scale"),
        (["--set", "sweep.space.n_factors={low = 0, high = 4}"], "n_factors must be"),
        (["--set", "sweep.space.hidden={low = 1, high = 4}"], "not searchable"),
        (["--trials", "0"], "--trials must be >= 1"),
        (["--set", "sweep.variants=[{name = 'b', variant = 'bpmf', space.lr = {low = 0.1, high = 1}}]"], "'lr'"),
        (
            [
                "--set",
                "sweep.variants=[{name = 'b', variant = 'bpmf', options = {burn_in = -2}, space = {lr = false}}]",
            ],
            "burn_in",
        ),
    ]
    for extra, message in cases:
        assert sweep(tiny, *extra) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (workdir / "mlruns").exists()
    assert main(["sweep", "experiments/seed_reproduction.toml"]) == 2
    assert "no [sweep] table" in capsys.readouterr().err


def test_train_logs_its_runs_too(workdir, small_dir):
    args = [
        "train",
        "experiments/seed_reproduction.toml",
        "--ratings",
        str(small_dir),
        "--quiet",
        "--set",
        "schedule=[[2, 0.05]]",
        "--set",
        "n_factors=8",
    ]
    assert main(args) == 0
    mlflow.set_tracking_uri(default_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("seed_reproduction")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["dot", "dot_bias_sigmoid"]
    for run in runs:
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
        assert mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model") is not None


def test_storage_url_takes_an_optuna_rdb(tiny, workdir):
    one = ["--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]", "--trials", "2"]
    assert sweep(tiny, "--storage", "sqlite:///studies.db", *one) == 0
    study = optuna.load_study(study_name="tiny/dot", storage="sqlite:///studies.db")
    assert len(study.trials) == 2
    assert not (workdir / "mlruns" / "optuna-journal.log").exists()


def test_hyperband_is_selectable(tiny):
    from cfexp.config.experiment import load_experiment
    from cfexp.search.sweep import make_study

    experiment = load_experiment(tiny, ["sweep.pruner='hyperband'"])
    study = make_study(experiment.sweep, "x/y", 2, optuna.storages.InMemoryStorage())
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    assert (
        sweep(tiny, "--set", "sweep.pruner='hyperband'", "--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]")
        == 0
    )
    assert len(optuna.load_study(study_name="tiny/dot", storage=journal()).trials) == 3


BPMF_STUDY = (
    "[{name = 'bayes', variant = 'bpmf', schedule = 'constant', epochs = 6, lr = 1.0, init = 'normal(0, 0.3)', "
    "y_range = [0.5, 5.0], options = {burn_in = 2}, space = {lr = false, n_factors = {low = 2, high = 6}}}]"
)


def test_a_gibbs_sampled_study_logs_like_any_other(tiny):
    """bpmf trials: noise precision searched and logged per sweep, no lr searched, and a loadable best model."""
    assert sweep(tiny, "--set", f"sweep.variants={BPMF_STUDY}", "--trials", "2") == 0
    client, _ = client_and_runs()
    study = optuna.load_study(study_name="tiny/bayes", storage=journal())
    assert len(study.trials) == 2 and set(study.best_trial.params) == {"n_factors", "noise_precision"}
    best_run = study.best_trial.user_attrs["mlflow_run_id"]
    params = client.get_run(best_run).data.params
    assert {"n_factors", "noise_precision", "epochs", "init"} <= set(params)
    assert not {"lr", "optimizer", "momentum", "batch_size", "row_l2"} & set(params)  # a sampler has none of these
    sweeps = client.get_metric_history(best_run, "noise_precision")
    assert [m.step for m in sweeps] == list(range(6))
    assert [m.value for m in sweeps] == [pytest.approx(study.best_trial.params["noise_precision"])] * 6
    history = client.get_metric_history(best_run, "val_loss")
    assert min(m.value for m in history) == pytest.approx(study.best_value)
    model = mlflow.pyfunc.load_model(f"runs:/{best_run}/model")
    prediction = model.predict(pd.DataFrame({"userId": [1, 10**9], "movieId": [31, 1]}))
    assert 0.5 <= prediction[0] <= 5.0 and np.isnan(prediction[1])


def test_a_seeded_sweep_gives_the_same_val_losses_again(tiny, workdir, monkeypatch):
    """One process, a fixed seed, the CPU: the same values to 1e-6 (README says what parallel processes change)."""
    one = ["--set", "sweep.variants=[{name = 'dot', variant = 'dot'}]", "--trials", "3"]
    values = []
    for folder in ("first", "second"):
        (workdir / folder).mkdir()
        monkeypatch.chdir(workdir / folder)
        assert sweep(tiny, *one) == 0
        values.append([t.value for t in optuna.load_study(study_name="tiny/dot", storage=journal()).trials])
    assert values[0] == pytest.approx(values[1], abs=1e-6) and len(values[0]) == 3
