"""The settings an experiment is run under: `[across]`'s product or listed set, `--across`, and refusals."""

import pytest

from cfexp.across import stats
from cfexp.across.conclusions import Finding
from cfexp.config.across_table import from_cli, parse_across
from cfexp.config.experiment import load_experiment
from cfexp.errors import UserError


def test_lists_make_their_product_in_order():
    settings = parse_across({"data.split": ["random", "temporal"], "data.k_core": [0, 5]}, "x")
    assert [s.label for s in settings] == [
        "split=random, k_core=0",
        "split=random, k_core=5",
        "split=temporal, k_core=0",
        "split=temporal, k_core=5",
    ]
    assert settings[3].overrides() == ['data.split="temporal"', "data.k_core=5"]


def test_a_listed_set_and_the_command_line():
    listed = parse_across(
        {"settings": [{"data.split": "random"}, {"data.split": "user-last", "data.holdout": 0.2}]}, "x"
    )
    assert [s.label for s in listed] == ["split=random", "split=user-last, holdout=0.2"]
    assert [s.label for s in from_cli(["data.split=random,temporal", "data.holdout=2"])] == [
        "split=random, holdout=2",
        "split=temporal, holdout=2",
    ]


def test_a_setting_is_the_experiment_with_its_overrides(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text('[data]\ntest_pct = 0.2\n\n[across]\n"data.split" = ["random", "temporal"]\n')
    experiment = load_experiment(path)
    assert [s.label for s in experiment.across] == ["split=random", "split=temporal"]
    same, other = (load_experiment(path, s.overrides()) for s in experiment.across)
    assert not same.data_from_cli and same.name == "e"  # the file's own data: the file's experiment
    assert other.data_from_cli and other.data.split == "temporal"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"sweep.sampler": ["gp", "tpe"]}, "'sweep.sampler' cannot vary across settings"),
        ({"data.colour": ["red"]}, "'data.colour' cannot vary"),
        ({"data.split": []}, "must be a non-empty list"),
        ({"data.split": ["random", "random"]}, "a setting is given twice"),
        ({"settings": [{"data.split": "random"}], "data.seed": [1]}, "not both"),
        ({}, "must be a table"),
    ],
)
def test_impossible_settings_are_refused(raw, words):
    with pytest.raises(UserError, match=None) as error:
        parse_across(raw, "x")
    assert words in str(error.value)


def test_a_finding_counts_where_it_holds_and_where_it_is_significant():
    finding = Finding("`a` is the champion", {"s1": (True, True), "s2": (False, None), "s3": (True, False)})
    assert finding.sentence() == "`a` is the champion: holds in 2 of 3 settings (s1, s3), significant in 1."
    everywhere = Finding("the order holds", {"s1": (True, None), "s2": (True, None)})
    assert everywhere.sentence() == "the order holds: holds in 2 of 2 settings (all)."


def test_friedman_refuses_too_few_settings_and_gives_demsars_critical_difference():
    import pandas as pd

    two = pd.DataFrame({"s1": [1.0, 2.0, 3.0], "s2": [1.0, 3.0, 2.0]}, index=["a", "b", "c"])
    refused = stats.friedman(two, lower_is_better=True)
    assert not refused.ran and "need at least 3 settings, and there are 2" in refused.sentence("MSE")
    four = pd.DataFrame({f"s{i}": [1.0, 2.0, 3.0, 4.0] for i in range(5)}, index=list("abcd"))
    test = stats.friedman(four, lower_is_better=True)
    assert test.ran and test.p < 0.05
    # Demšar (2006), table 5: q_0.05 = 2.569 for 4 classifiers; CD = q sqrt(k(k + 1) / 6N)
    assert test.cd == pytest.approx(2.569 * (4 * 5 / (6 * 5)) ** 0.5, abs=1e-3)
