import pytest

from cfexp.config.experiment import RUN_DEFAULTS, TOP_LEVEL, load_experiment, parse_experiment
from cfexp.config.overrides import apply_override as _apply
from cfexp.errors import UserError


def experiment(**train):
    return {"train": {"variant": "dot", **train}, "runs": [{"name": "a"}, {"name": "b", "n_factors": 20}]}


def apply_override(raw, text):
    _apply(raw, text, set(RUN_DEFAULTS), TOP_LEVEL)


def test_runs_inherit_train_defaults_and_override_them():
    exp = parse_experiment(experiment(n_factors=10), "x")
    assert [r.n_factors for r in exp.runs] == [10, 20]
    assert exp.runs[0].phases == ((3, 0.1), (3, 0.01)) and exp.runs[0].epochs == 6


def test_lr_scales_the_phases_and_named_schedules_need_epochs():
    exp = parse_experiment(experiment(lr=0.05), "x")
    assert exp.runs[0].phases == ((3, 0.05), (3, 0.005))
    exp = parse_experiment(experiment(schedule="one_cycle", lr=0.01, epochs=4), "x")
    assert exp.runs[0].one_cycle and exp.runs[0].phases == ((4, 0.01),)
    with pytest.raises(UserError, match="needs lr and epochs"):
        parse_experiment(experiment(schedule="one_cycle"), "x")
    with pytest.raises(UserError, match="disagrees"):
        parse_experiment(experiment(epochs=2), "x")


def test_overrides_target_every_run_one_run_or_a_table():
    raw = experiment()
    apply_override(raw, "n_factors=7")
    apply_override(raw, "runs.b.lr=0.2")
    apply_override(raw, "data.test_pct=0.1")
    apply_override(raw, "runs.0.init=uniform(0, 1)")
    exp = parse_experiment(raw, "x")
    assert [r.n_factors for r in exp.runs] == [7, 7]
    assert [r.lr for r in exp.runs] == [0.1, 0.2]
    assert exp.data.test_pct == 0.1 and exp.runs[0].init == "uniform(0, 1)"
    with pytest.raises(UserError, match="no entry"):
        apply_override(raw, "runs.zzz.lr=1")
    with pytest.raises(UserError, match="use key=value"):
        apply_override(raw, "lr")


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"n_factors": "ten"}, "n_factors must be an integer"),
        ({"lr": True}, "lr must be a number"),
        ({"y_range": [5, 1]}, "y_range"),
        ({"schedule": [[1]]}, "schedule phases"),
        ({"momentum": 1.2}, "momentum"),
        ({"weight_decay": -1}, "weight_decay"),
        ({"wd": 1}, "unknown key 'wd'"),
    ],
)
def test_bad_settings_are_user_errors(train, message):
    with pytest.raises(UserError, match=message):
        parse_experiment(experiment(**train), "x")


def test_data_paths_are_relative_to_the_experiment(tmp_path):
    (tmp_path / "e.toml").write_text('[data]\nratings = "d/ratings.csv"\n')
    assert load_experiment(tmp_path / "e.toml").data.ratings == str(tmp_path / "d/ratings.csv")
    (tmp_path / "bad.toml").write_text("[data\n")
    with pytest.raises(UserError, match="invalid TOML"):
        load_experiment(tmp_path / "bad.toml")
