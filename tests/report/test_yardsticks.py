"""The report measures studies against the variants declared as yardsticks, not against names it knows."""

import pytest
import torch

from cfexp.errors import UserError
from cfexp.report.collect import Study, Trial, yardstick
from cfexp.report.comparisons import _verdict
from cfexp.report.leaderboard import leaderboard_section
from cfexp.variants.baselines import CLOSED_FORM
from cfexp.variants.registry import REGISTRY, register


@pytest.fixture
def my_floors():
    """Two variants of a user's own, declared as the rating floor and the top-N floor."""
    for name, role in (("my_mean", "rating"), ("my_ranker", "top-n")):
        register(name, init="constant(0)", trainer=CLOSED_FORM, uses_y_range=False, yardstick=role)(
            lambda n_users, n_movies, n_factors, y_range, sparse: torch.nn.Linear(1, 1)
        )
    yield
    for name in ("my_mean", "my_ranker"):
        REGISTRY.pop(name)


def study(variant: str, val_mse: float, ndcg: float) -> Study:
    best = Trial("run-" + variant, variant, 0, "COMPLETE", {}, val_mse, None, "FINISHED", {"ndcg_at_10": ndcg})
    return Study(variant, variant, variant, "constant(0)", "parent", [best], None, best)


def test_lift_is_measured_over_the_declared_rating_floor(my_floors):
    studies = [study("dot", 0.80, 0.20), study("my_mean", 0.95, 0.10), study("bias", 0.85, 0.15)]
    assert yardstick(studies, "rating").variant == "my_mean"  # the first declared one, in the order given
    assert yardstick(studies, "popularity") is None
    table = leaderboard_section([studies[0], studies[1]]).markdown()
    assert "lift over my_mean" in table and "+0.1500" in table  # 0.95 - 0.80 for dot
    assert "lift over bias" not in table
    assert "than the rating floor's, my_mean;" in table  # described by its own declaration


def test_the_verdict_names_the_declared_top_n_floor(my_floors):
    ranked = [study("dot", 0.80, 0.30), study("my_ranker", float("nan"), 0.20), study("ease", float("nan"), 0.10)]
    verdict = _verdict(ranked, ranked, "ndcg_at_10", lambda st: st.best.ranking["ndcg_at_10"], "val")
    assert "Above the top-N floor, my_ranker (0.2000): dot (0.3000); the other 1 rank below it." in verdict


def test_an_unknown_yardstick_is_refused():
    with pytest.raises(UserError, match="unknown yardstick 'floor'"):
        register("never_registered", init="constant(0)", trainer=CLOSED_FORM, yardstick="floor")
    assert "never_registered" not in REGISTRY
