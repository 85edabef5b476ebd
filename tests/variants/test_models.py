import pytest
import torch

from cfexp.errors import UserError
from cfexp.models.inits import Init
from cfexp.variants import registry as models

VARIANTS = ["dot", "dot_bias", "dot_bias_sigmoid", "nn"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_predicts_one_rating_per_pair(variant):
    model = models.build_model(variant, 7, 11, n_factors=5)
    users, movies = torch.tensor([0, 6, 3]), torch.tensor([10, 0, 4])
    assert model(users, movies).shape == (3,)


def test_all_variants_are_registered_with_a_search_space():
    assert set(VARIANTS) <= set(models.REGISTRY)
    for variant in models.REGISTRY.values():
        if variant.trainer.name == "sgd":
            assert {"n_factors", "lr", "weight_decay"} <= set(variant.space)
    assert {"hidden", "dropout"} <= set(models.REGISTRY["nn"].space)
    # a sampler has no lr to tune: its space is the rank and the noise precision
    assert set(models.REGISTRY["bpmf"].space) == {"n_factors", "noise_precision"}


@pytest.mark.parametrize("variant", ["dot_bias_sigmoid", "nn"])
def test_sigmoid_outputs_stay_inside_y_range(variant):
    torch.manual_seed(0)
    model = models.build_model(variant, 20, 30, n_factors=8, init="normal(0, 3)", y_range=(0.0, 5.5))
    out = model(torch.randint(0, 20, (500,)), torch.randint(0, 30, (500,)))
    assert out.min() >= 0.0 and out.max() <= 5.5
    assert out.max() - out.min() > 1.0  # the weights are large: outputs spread across the range


def test_constant_init_is_constant_and_the_lessons_uniform_is_named_for_what_it_is():
    assert Init.parse("uniform(0.01, 0.01)") == Init("constant", (0.01,))
    model = models.build_model("dot_bias_sigmoid", 5, 9, n_factors=4, init="uniform(0.01, 0.01)")
    for weight in (model.u.weight, model.m.weight, model.ub.weight, model.mb.weight):
        assert torch.all(weight == 0.01)


@pytest.mark.parametrize(("text", "low", "high"), [("uniform(0, 0.05)", 0.0, 0.05), ("uniform(-0.1, 0.1)", -0.1, 0.1)])
def test_uniform_init_stays_in_its_range(text, low, high):
    model = models.build_model("dot", 50, 60, n_factors=10, init=text)
    assert model.u.weight.min() >= low and model.u.weight.max() <= high
    assert model.u.weight.std() > 0


def test_normal_init_has_its_std():
    torch.manual_seed(0)
    model = models.build_model("dot", 400, 400, n_factors=50, init="normal(0, 0.02)")
    assert model.m.weight.std().item() == pytest.approx(0.02, rel=0.05)


@pytest.mark.parametrize("text", ["gaussian(0, 1)", "uniform(1)", "uniform(0.5, 0.1)", "normal(0, -1)", "constant(x)"])
def test_bad_init_is_a_user_error(text):
    with pytest.raises(UserError, match="bad init"):
        Init.parse(text)


def test_unknown_variant_and_bad_options_are_user_errors():
    with pytest.raises(UserError, match="unknown variant 'svd'"):
        models.build_model("svd", 3, 3)
    with pytest.raises(UserError, match="has no option"):
        models.build_model("dot", 3, 3, options={"hidden": 3})
    with pytest.raises(UserError, match="n_factors must be a positive integer"):
        models.build_model("dot", 3, 3, n_factors=0)
    with pytest.raises(UserError, match="dropout"):
        models.build_model("nn", 3, 3, options={"dropout": 1.5})


@pytest.mark.parametrize("variant", ["dot", "dot_bias", "dot_bias_sigmoid"])
def test_analytic_jacobian_matches_autograd(variant):
    torch.manual_seed(1)
    model = models.build_model(variant, 6, 8, n_factors=4, init="normal(0, 0.5)")
    u_side, m_side = model.tables()
    users, movies = torch.tensor([0, 3, 3, 5]), torch.tensor([1, 1, 7, 2])
    u = torch.cat([e.weight[users] for e in u_side], 1).detach().requires_grad_()
    m = torch.cat([e.weight[movies] for e in m_side], 1).detach().requires_grad_()
    score = model.score(u, m)
    score.sum().backward()
    with torch.no_grad():
        pred, slope, jac = model.score_jacobian(torch.cat([m, u]), len(u))  # the partners: [m; u]
    slope = torch.ones_like(pred) if slope is None else slope
    assert torch.allclose(pred, score)
    assert torch.allclose(jac * torch.cat([slope, slope]).unsqueeze(1), torch.cat([u.grad, m.grad]), atol=1e-6)


def test_the_mlps_ranking_scores_equal_its_pairwise_forward():
    """EmbeddingNN's score_matrix (each side projected once) gives what its forward gives pair by pair."""
    torch.manual_seed(0)
    model = models.build_model(
        "nn", 7, 11, n_factors=5, y_range=(0.5, 5.0), options={"hidden": 9, "dropout": 0.3}
    ).eval()
    users, movies = torch.tensor([0, 3, 6]), torch.tensor([10, 2, 5, 0])
    with torch.no_grad():
        pairwise = model(users.repeat_interleave(4), movies.repeat(3)).view(3, 4)
        torch.testing.assert_close(model.score_matrix(users, movies), pairwise, rtol=1e-5, atol=1e-5)
