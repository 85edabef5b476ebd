"""Fused CPU loops (numba) for lazy SGD's large batches, where torch's separate passes are memory-bound.

At batch 65,536 on ml-25m a step touches about 48k distinct rows of 130 floats, each with its momentum. torch would
make a dozen passes over tensors of that size (gather, catch up, step, sum the gradients, write back); these two
loops touch each row's state twice and each gradient row once, in parallel over the distinct rows (which is safe:
each is written by one iteration only). They compute exactly what lazy_sgd's torch path computes, in float32.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True)
def caught_up_params(state: np.ndarray, rows: np.ndarray, gaps: np.ndarray, powers: np.ndarray, out: np.ndarray):
    """out[k] = the parameter half of A^gap · [param; momentum] of row rows[k]: its value at the current step."""
    width = state.shape[2]
    for k in numba.prange(rows.shape[0]):
        row, gap = rows[k], gaps[k]
        c0, c1 = powers[gap, 0, 0], powers[gap, 0, 1]
        for j in range(width):
            out[k, j] = c0 * state[row, 0, j] + c1 * state[row, 1, j]


@numba.njit(parallel=True, cache=True)
def step_rows(
    state: np.ndarray,
    rows: np.ndarray,
    gaps: np.ndarray,
    powers: np.ndarray,
    jacobian: np.ndarray,
    coef: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    params: np.ndarray,
    l2: float,
    lr: float,
    summed: np.ndarray,
):
    """One SGD step of each distinct row rows[k]: its occurrences' gradients summed (occurrence i, one of
    order[offsets[k]:offsets[k + 1]], contributes coef[i mod b] · jacobian[i]), plus l2 · uses · param, then
    [param; momentum] ← A · A^gap · state + [−lr; 1] · g."""
    width, examples = state.shape[2], coef.shape[0]
    a00, a01, a10, a11 = powers[1, 0, 0], powers[1, 0, 1], powers[1, 1, 0], powers[1, 1, 1]
    for k in numba.prange(rows.shape[0]):
        start, stop = offsets[k], offsets[k + 1]
        for j in range(width):
            summed[k, j] = l2 * (stop - start) * params[k, j]
        for t in range(start, stop):
            i = order[t]
            c = coef[i - examples] if i >= examples else coef[i]
            for j in range(width):
                summed[k, j] += c * jacobian[i, j]
        row, gap = rows[k], gaps[k]
        c00, c01, c10, c11 = powers[gap, 0, 0], powers[gap, 0, 1], powers[gap, 1, 0], powers[gap, 1, 1]
        for j in range(width):
            p, m = state[row, 0, j], state[row, 1, j]  # the parameter and its momentum
            caught_p, caught_b = c00 * p + c01 * m, c10 * p + c11 * m
            state[row, 0, j] = a00 * caught_p + a01 * caught_b - lr * summed[k, j]
            state[row, 1, j] = a10 * caught_p + a11 * caught_b + summed[k, j]


def warm() -> None:
    """Compile both loops (or load them from numba's cache) on tiny arrays, so that a timed epoch does not pay it."""
    state = np.zeros((2, 2, 3), np.float32)
    rows, gaps, offsets = np.arange(2), np.zeros(2, np.int64), np.array([0, 1, 2])
    powers = np.tile(np.eye(2, dtype=np.float32), (2, 1, 1))
    params, jacobian, coef = np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32), np.zeros(1, np.float32)
    caught_up_params(state, rows, gaps, powers, params)
    step_rows(state, rows, gaps, powers, jacobian, coef, rows, offsets, params, 0.0, 0.1, params.copy())
