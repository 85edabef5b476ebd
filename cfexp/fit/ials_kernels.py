"""iALS's conjugate gradients on the CPU as one fused loop (numba) per side, row by row as `implicit` does.

Solving every row at once through sparse products reads each positive's partner row twice per CG step (a sampled
product, then a sparse-dense one) and builds arrays of positives × factors on the way. Here a thread takes a row and
runs all its CG steps while its positives' partner rows are in cache: one pass over them per step, which both takes
the products y · p and adds them back, and nothing is built beyond a few rows of scratch. The arithmetic is
`_Side.solve_cg`'s, in float32 (sums in another order).
"""

from __future__ import annotations

import numba
import numpy as np

CHUNKS = 256  # rows are cut into chunks of even work (a row's product with YᵀY costs about f / 2 positives')


@numba.njit(parallel=True, cache=True, fastmath=True)
def solve_cg(
    offsets: np.ndarray,
    columns: np.ndarray,
    extra: np.ndarray,
    rows: np.ndarray,
    partners: np.ndarray,
    gram: np.ndarray,
    reg: np.ndarray,
    steps: int,
):
    """`steps` of conjugate gradients for each row x of `rows`, in place, from its current value: the system is
    (YᵀY + Σ (c − 1) y yᵀ + λ I) x = Σ c y over the row's positives y (partners[columns[offsets[r]:offsets[r + 1]]]),
    with c − 1 = extra."""
    n, f = rows.shape
    one = np.float32(1.0)
    work = offsets + (f // 2) * np.arange(n + 1)
    bounds = np.searchsorted(work, np.linspace(0, work[-1], CHUNKS + 1))
    bounds[-1] = n
    for chunk in numba.prange(CHUNKS):
        x, residual = np.empty(f, np.float32), np.empty(f, np.float32)
        direction, product = np.empty(f, np.float32), np.empty(f, np.float32)
        for r in range(bounds[chunk], bounds[chunk + 1]):
            start, stop, lam = offsets[r], offsets[r + 1], reg[r]
            for j in range(f):
                x[j] = rows[r, j]
            # residual = Σ c y − A x, where A x = x·YᵀY + Σ (c − 1)(y · x) y + λ x
            _gram_times(gram, x, lam, residual)
            for j in range(f):
                residual[j] = -residual[j]
            for t in range(start, stop):
                y = partners[columns[t]]
                dot = np.float32(0.0)
                for j in range(f):
                    dot += y[j] * x[j]
                weight = extra[t] + one - extra[t] * dot
                for j in range(f):
                    residual[j] += weight * y[j]
            size = np.float32(0.0)
            for j in range(f):
                direction[j] = residual[j]
                size += residual[j] * residual[j]
            for _ in range(steps):
                _gram_times(gram, direction, lam, product)
                for t in range(start, stop):
                    y = partners[columns[t]]
                    dot = np.float32(0.0)
                    for j in range(f):
                        dot += y[j] * direction[j]
                    weight = extra[t] * dot
                    for j in range(f):
                        product[j] += weight * y[j]
                curvature = np.float32(0.0)
                for j in range(f):
                    curvature += direction[j] * product[j]
                alive = size > 1e-20
                step = size / max(curvature, np.float32(1e-30)) if alive else np.float32(0.0)
                new_size = np.float32(0.0)
                for j in range(f):
                    x[j] += step * direction[j]
                    residual[j] -= step * product[j]
                    new_size += residual[j] * residual[j]
                ratio = new_size / size if alive else np.float32(0.0)
                for j in range(f):
                    direction[j] = residual[j] + ratio * direction[j]
                size = new_size
            for j in range(f):
                rows[r, j] = x[j]


@numba.njit(inline="always", fastmath=True)
def _gram_times(gram: np.ndarray, x: np.ndarray, lam: float, out: np.ndarray) -> None:
    f = x.shape[0]
    for j in range(f):
        out[j] = lam * x[j]
    for i in range(f):
        for j in range(f):
            out[j] += x[i] * gram[i, j]


@numba.njit(parallel=True, cache=True, fastmath=True)
def positive_terms(offsets: np.ndarray, columns: np.ndarray, extra: np.ndarray, rows, partners) -> float:
    """Σ over the positives of c (1 − x·y)² − (x·y)²: what the positive cells add to Σ over all cells of (x·y)²."""
    n, f = rows.shape
    total = 0.0
    for r in numba.prange(n):
        for t in range(offsets[r], offsets[r + 1]):
            y = partners[columns[t]]
            dot = np.float32(0.0)
            for j in range(f):
                dot += y[j] * rows[r, j]
            total += (extra[t] + 1.0) * (1.0 - dot) ** 2 - dot * dot  # in float64
    return total


def warm() -> None:
    """Compile both loops (or load them from numba's cache) on tiny arrays, so that a timed epoch does not pay it."""
    offsets, columns = np.array([0, 1, 2]), np.array([0, 1])
    extra, rows, reg = np.ones(2, np.float32), np.ones((2, 2), np.float32), np.ones(2, np.float32)
    solve_cg(offsets, columns, extra, rows, rows.copy(), np.eye(2, dtype=np.float32), reg, 1)
    positive_terms(offsets, columns, extra, rows, rows.copy())
