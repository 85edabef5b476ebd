"""The denoising linear autoencoders (Steck 2020) from EASE's factorization, and ItemKNN's neighbours, against their
formulas in numpy."""

import numpy as np
import pytest
import torch

from cfexp.fit import ease


def numpy_weights(x: np.ndarray, l2: float, dropout: float, zero_diagonal: bool) -> np.ndarray:
    gram = x.T @ x
    lam = dropout / (1 - dropout) * np.diag(gram) + l2
    precision = np.linalg.inv(gram + np.diag(lam))
    if zero_diagonal:  # EDLAE (EASE at p = 0): I − P·diag(1/diag P)
        weights = precision / -np.diag(precision)
        np.fill_diagonal(weights, 0.0)
        return weights
    return np.eye(len(lam)) - precision * lam  # DLAE: I − PΛ


@pytest.mark.parametrize("shape", [(40, 12), (8, 30)], ids=["more users: primal", "fewer users: dual"])
@pytest.mark.parametrize("dropout", [0.0, 0.25, 0.6])
@pytest.mark.parametrize("zero_diagonal", [True, False], ids=["edlae", "dlae"])
def test_both_systems_give_the_formula(shape, dropout, zero_diagonal):
    x = (np.random.default_rng(3).random(shape) < 0.3).astype(np.float64)
    expected = numpy_weights(x, 5.0, dropout, zero_diagonal)
    sparse = torch.tensor(x, dtype=torch.float32).to_sparse().coalesce()
    for solve in (ease.solve_primal, ease.solve_dual):
        weights, _ = solve(sparse, 5.0, dropout, zero_diagonal)
        np.testing.assert_allclose(weights.numpy(), expected, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(40, 12), (8, 30)], ids=["more users: primal", "fewer users: dual"])
def test_a_graded_x_gives_the_formula_on_both_systems(shape):
    rng = np.random.default_rng(5)
    x = np.where(rng.random(shape) < 0.3, 1.0, np.where(rng.random(shape) < 0.2, 0.3, 0.0))
    expected = numpy_weights(x, 5.0, 0.4, False)
    sparse = torch.tensor(x, dtype=torch.float32).to_sparse().coalesce()
    for solve in (ease.solve_primal, ease.solve_dual):
        np.testing.assert_allclose(solve(sparse, 5.0, 0.4, False)[0].numpy(), expected, atol=2e-5, rtol=1e-4)


def test_near_weight_grades_the_ratings_just_below_the_threshold_in_fit_and_scoring():
    from cfexp.data.ratings import TensorPart
    from cfexp.fit.common import Recipe

    train = TensorPart(
        torch.tensor([0, 0, 0, 1, 1, 2]), torch.tensor([0, 1, 2, 0, 2, 1]), torch.tensor([5.0, 3.5, 2.0, 4.0, 3.0, 4.5])
    )
    model = ease.EASE(3, 3, 2.0, 4.0, 0, dropout=0.2, zero_diagonal=False, near_weight=0.5)
    ease.fit(model, train, train, Recipe(phases=((1, 1.0),), device="cpu"))
    x = np.array([[1.0, 0.5, 0.0], [1.0, 0.0, 0.5], [0.0, 1.0, 0.0]])  # 3.5 and 3.0 weigh 0.5, 2.0 nothing
    weights = numpy_weights(x, 2.0, 0.2, False)
    np.testing.assert_allclose(model.weights.numpy(), weights, atol=1e-5)
    scores = model.score_matrix(torch.arange(3), torch.arange(3))
    np.testing.assert_allclose(scores.numpy(), x @ weights, atol=1e-5)


def test_a_dropout_outside_zero_to_one_is_refused():
    from cfexp.errors import UserError

    with pytest.raises(UserError, match="dropout"):
        ease.EASE(3, 4, 10.0, 0.0, 0, dropout=1.0)


def test_itemknn_keeps_each_movies_nearest_shrunk_cosine_neighbours():
    from cfexp.fit import itemknn

    x = (np.random.default_rng(4).random((30, 10)) < 0.4).astype(np.float64)
    gram = x.T @ x
    norms = np.sqrt(np.diag(gram))
    expected = gram / (np.outer(norms, norms) + 2.0)
    np.fill_diagonal(expected, 0.0)
    for column in expected.T:  # each movie keeps its 3 nearest; among equal similarities, the lower codes
        order = np.lexsort((np.arange(len(column)), -column.astype(np.float32)))
        column[order[3:]] = 0.0
    sparse = torch.tensor(x, dtype=torch.float32).to_sparse().coalesce()
    np.testing.assert_allclose(itemknn.similarities(sparse, 3, 2.0).numpy(), expected, atol=1e-6)
