"""Fused CPU loops (numba) for lazy SGD's large batches, where torch's separate passes are memory-bound.

At batch 65,536 on ml-25m a step touches about 48k distinct rows of 130 floats, each with its momentum. torch would
make a dozen passes over tensors of that size (gather, catch up, score, step, sum the gradients, write back); these
three loops touch each row's state twice and read each example's two rows twice (to score it, then as each other's
gradient), straight from the caught-up distinct rows: nothing of size examples × factors is built. The steps run in
parallel over the distinct rows (which is safe: each is written by one iteration only). They compute exactly what
lazy_sgd's torch path computes, in float32 (the sums in another order).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, fastmath=True)
def caught_up_params(state: np.ndarray, rows: np.ndarray, gaps: np.ndarray, powers: np.ndarray, out: np.ndarray):
    """out[k] = the parameter half of A^gap · [param; momentum] of row rows[k]: its value at the current step."""
    width = state.shape[2]
    for k in numba.prange(rows.shape[0]):
        row, gap = rows[k], gaps[k]
        c0, c1 = powers[gap, 0, 0], powers[gap, 0, 1]
        for j in range(width):
            out[k, j] = c0 * state[row, 0, j] + c1 * state[row, 1, j]


CHUNKS = 64


@numba.njit(parallel=True, cache=True)
def shuffled(perm, users, movies, ratings, out_users, out_movies, out_ratings) -> None:
    """The three columns in `perm`'s order, into the three outs: one parallel pass where torch's gathers take
    three."""
    for i in numba.prange(len(perm)):
        j = perm[i]
        out_users[i], out_movies[i], out_ratings[i] = users[j], movies[j], ratings[j]


@numba.njit(cache=True)
def group_rows(rows: np.ndarray, tally: np.ndarray):
    """A batch's distinct rows, ascending; where each one's occurrences start in `order` (offsets); the occurrences
    grouped by row (each group in batch order); and each occurrence's index among the distinct rows. `tally` (one
    zero per table row) counts the uses and is left zeroed. A counting sort: one pass over the batch, one over the
    rows it touched."""
    n = len(rows)
    for r in rows:
        tally[r] += 1
    found, offsets = np.empty(n, np.int64), np.zeros(n + 1, np.int64)
    k = 0
    for r in range(len(tally)):  # ascending, without a sort: the table's rows are a few hundred thousand
        if tally[r]:
            found[k] = r
            offsets[k + 1] = offsets[k] + tally[r]
            tally[r] = k  # from here on, the row's index among the distinct ones
            k += 1
    distinct, offsets = found[:k], offsets[: k + 1]
    order, occurrence = np.empty(n, np.int64), np.empty(n, np.int64)
    cursor = offsets[:-1].copy()
    for i in range(n):
        k = tally[rows[i]]
        occurrence[i] = k
        order[cursor[k]] = i
        cursor[k] += 1
    for r in distinct:
        tally[r] = 0
    return distinct, offsets, order, occurrence


@numba.njit(parallel=True, cache=True, fastmath=True)
def raw_scores(params: np.ndarray, occurrence: np.ndarray, factors: int, biased: bool, out: np.ndarray):
    """out[e] = u · m over the first `factors` columns (plus both biases, at column `factors`, when `biased`) of
    example e, whose user row is params[occurrence[e]] and movie row params[occurrence[e + b]]."""
    b = out.shape[0]
    for e in numba.prange(b):
        u, m = occurrence[e], occurrence[e + b]
        total = np.float32(0.0)
        for j in range(factors):
            total += params[u, j] * params[m, j]
        if biased:
            total += params[u, factors] + params[m, factors]
        out[e] = total


@numba.njit(parallel=True, cache=True, fastmath=True)
def step_rows(
    state: np.ndarray,
    rows: np.ndarray,
    gaps: np.ndarray,
    powers: np.ndarray,
    coef: np.ndarray,
    order: np.ndarray,
    offsets: np.ndarray,
    occurrence: np.ndarray,
    params: np.ndarray,
    factors: int,
    biased: bool,
    l2: float,
    lr: float,
    summed: np.ndarray,
):
    """One SGD step of each distinct row rows[k]: its occurrences' gradients summed (into summed[k]), plus
    l2 · uses · param, then [param; momentum] ← A · A^gap · state + [−lr; 1] · g. Occurrence i (one of
    order[offsets[k]:offsets[k + 1]]) contributes coef[i mod b] times its partner's row (the partner of a user
    occurrence is its example's movie occurrence, and back), with 1 in the bias column: d raw / d row, read from
    params instead of gathered."""
    width, examples, n = state.shape[2], coef.shape[0], rows.shape[0]
    a00, a01, a10, a11 = powers[1, 0, 0], powers[1, 0, 1], powers[1, 1, 0], powers[1, 1, 1]
    # A popular movie has thousands of occurrences and a user a few: the rows are cut into chunks of even work
    # (a row's state costs about two occurrences), since prange hands each thread an equal share of its range.
    work = offsets + 2 * np.arange(n + 1)
    bounds = np.searchsorted(work, np.linspace(0, work[-1], CHUNKS + 1))
    bounds[-1] = n
    for chunk in numba.prange(CHUNKS):
        for k in range(bounds[chunk], bounds[chunk + 1]):
            start, stop = offsets[k], offsets[k + 1]
            for j in range(width):
                summed[k, j] = l2 * (stop - start) * params[k, j]
            for t in range(start, stop):
                i = order[t]
                if i >= examples:
                    c, partner = coef[i - examples], occurrence[i - examples]
                else:
                    c, partner = coef[i], occurrence[i + examples]
                for j in range(factors):
                    summed[k, j] += c * params[partner, j]
                if biased:
                    summed[k, factors] += c
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
    params, coef = np.zeros((2, 3), np.float32), np.zeros(1, np.float32)
    caught_up_params(state, rows, gaps, powers, params)
    raw_scores(params, rows, 2, True, coef)
    group_rows(rows, np.zeros(2, np.int64))
    shuffled(rows, rows, rows, coef[:1].repeat(2), rows.copy(), rows.copy(), coef[:1].repeat(2))
    step_rows(state, rows, gaps, powers, coef, rows, offsets, rows, params, 2, True, 0.0, 0.1, params.copy())
