"""Stable counting sorts (numba): the order that sorts entries by small integer keys in a pass or two, where a
comparison sort of millions of int64 keys takes a second on two cores."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def lexicographic_order(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """The indices that sort the entries by row, then by column (each in [0, n_rows) and [0, n_cols)), equal
    entries in their input order. Data read in order (a file sorted by user) is sorted already, or needs one pass."""
    n = len(rows)
    sorted_rows = sorted_cols = sorted_keys = True
    for i in range(1, n):
        if rows[i] < rows[i - 1]:
            sorted_rows = False
        if cols[i] < cols[i - 1]:
            sorted_cols = False
        if rows[i] < rows[i - 1] or (rows[i] == rows[i - 1] and cols[i] < cols[i - 1]):
            sorted_keys = False
    if sorted_keys:
        return np.arange(n)
    by_col = np.arange(n) if sorted_cols else stable_order(cols, n_cols, np.arange(n))
    if sorted_rows and sorted_cols:
        return by_col
    return stable_order(rows, n_rows, by_col)


@numba.njit(cache=True)
def stable_order(keys: np.ndarray, n_keys: int, within: np.ndarray) -> np.ndarray:
    """`within` (an order of the entries) stably sorted by keys[within[i]], each key in [0, n_keys)."""
    starts = np.zeros(n_keys + 1, np.int64)
    for key in keys:
        starts[key + 1] += 1
    for k in range(n_keys):
        starts[k + 1] += starts[k]
    order = np.empty(len(within), np.int64)
    for i in range(len(within)):
        j = within[i]
        key = keys[j]
        order[starts[key]] = j
        starts[key] += 1
    return order


@numba.njit(cache=True)
def grouped_by_row(rows: np.ndarray, n_rows: int, cols: np.ndarray, values: np.ndarray):
    """`cols` and `values` stably grouped by row, placed as they are read (no gathers after the sort), and the
    order that groups them."""
    starts = np.zeros(n_rows + 1, np.int64)
    for row in rows:
        starts[row + 1] += 1
    for r in range(n_rows):
        starts[r + 1] += starts[r]
    order, placed_cols, placed_values = np.empty(len(rows), np.int64), np.empty_like(cols), np.empty_like(values)
    for i in range(len(rows)):
        at = starts[rows[i]]
        order[at], placed_cols[at], placed_values[at] = i, cols[i], values[i]
        starts[rows[i]] += 1
    return order, placed_cols, placed_values
