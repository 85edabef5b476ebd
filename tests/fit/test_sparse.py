"""The sparse layouts every trial reuses: the counting sorts give exactly the order a full sort of the (row, column)
keys gives, on data in any order; and a second fit on the same training part finds them built."""

import pytest
import torch

from cfexp.data.ratings import TensorPart
from cfexp.fit import sparse


def _entries(order: str, n: int = 5000, shape=(300, 200)):
    gen = torch.Generator().manual_seed(0)
    keys = torch.randperm(shape[0] * shape[1], generator=gen)[:n]  # distinct cells
    if order == "by row":  # a file sorted by user, its movies in file order
        keys = keys[torch.argsort(keys // shape[1], stable=True)]
    elif order == "by row and column":
        keys = torch.sort(keys).values
    elif order == "by column":
        keys = keys[torch.argsort(keys % shape[1], stable=True)]
    return keys // shape[1], keys % shape[1], shape


@pytest.mark.parametrize("order", ["random", "by row", "by row and column", "by column"])
def test_layout_is_the_sorted_order_of_the_keys(order):
    rows, cols, shape = _entries(order)
    layout = sparse.layout(rows, cols, shape)
    expected = torch.argsort(rows * shape[1] + cols, stable=True)
    assert torch.equal(layout.order, expected)
    assert torch.equal(layout.columns, cols[expected])
    assert torch.equal(
        layout.offsets,
        torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(rows, minlength=shape[0]), 0)]),
    )
    dense = torch.zeros(shape).index_put_((rows, cols), torch.arange(len(rows)).float())
    assert torch.equal(layout.matrix(torch.arange(len(rows)).float()).to_dense(), dense)


def test_by_row_is_a_stable_sort_of_the_rows():
    rows, _, shape = _entries("random")
    assert torch.equal(sparse.by_row(rows, shape[0]).order, torch.argsort(rows, stable=True))


def test_a_part_keeps_what_is_derived_from_it_for_the_next_fit():
    rows, cols, shape = _entries("random")
    part = TensorPart(rows, cols, torch.ones(len(rows)))
    first = sparse.ratings_layout(part, False, shape)
    assert sparse.ratings_layout(part, False, shape) is first
    assert sparse.ratings_layout(part, True, shape[::-1]) is not first


@pytest.mark.parametrize("order", ["random", "by row"])
def test_grouped_layout_holds_each_row_entries_in_input_order(order):
    rows, cols, shape = _entries(order)
    values = torch.rand(len(rows))
    grouped, placed = sparse.grouped(rows, cols, values, shape)
    expected = torch.argsort(rows, stable=True)
    assert torch.equal(grouped.order, expected)
    assert torch.equal(grouped.columns, cols[expected]) and torch.equal(placed, values[expected])
    assert torch.equal(grouped.offsets, sparse.layout(rows, cols, shape).offsets)
