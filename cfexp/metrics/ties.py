"""The exact top k of rows whose k-th score is tied (a clamped model's rows may hold hundreds of equal top scores),
equal scores taken by the lower column: on the CPU one loop (numba) that scans each such row only until it has
found the ties it needs; elsewhere torch ops over the whole rows."""

from __future__ import annotations

import numba
import numpy as np
import torch


def fill_ties(
    scores: torch.Tensor, rows: torch.Tensor, values: torch.Tensor, columns: torch.Tensor, k: int, loop=None
) -> torch.Tensor:
    """For each row in `rows` of `scores`: `values` and `columns` are its topk (k + 1 of them, best first) with the
    k-th tied to the next one. Returns its k columns: those scored above the k-th score (all among the topk), then
    the lowest columns scored equal to it. `loop` (default: on the CPU) takes numba's loop, else torch ops."""
    kth = values[:, k - 1]
    above = (values[:, :k] > kth[:, None]).sum(1)
    picked = columns[:, :k].contiguous()
    if scores.device.type == "cpu" if loop is None else loop:
        arrays = (scores, rows, kth.contiguous(), above, picked)
        _fill(*(a.numpy() for a in arrays))
        return picked
    ties = scores[rows] == kth[:, None]
    first = ties & (torch.cumsum(ties, 1, dtype=torch.int32) <= (k - above)[:, None])
    tied = torch.nonzero(first)[:, 1]
    free = torch.arange(k, device=scores.device)[None] >= above[:, None]
    picked[free] = tied  # row by row, each row's ties ascending
    return picked


@numba.njit(parallel=True, cache=True)
def _fill(scores: np.ndarray, rows: np.ndarray, kth: np.ndarray, above: np.ndarray, picked: np.ndarray):
    k = picked.shape[1]
    for i in numba.prange(rows.shape[0]):
        r, slot = rows[i], above[i]
        for j in range(scores.shape[1]):
            if slot >= k:
                break
            if scores[r, j] == kth[i]:
                picked[i, slot] = j
                slot += 1


def warm() -> None:
    """Compile the loop (or load it from numba's cache), so that a timed ranking pass does not pay it."""
    scores = np.ones((2, 3), np.float32)
    _fill(scores, np.arange(2), np.ones(2, np.float32), np.zeros(2, np.int64), np.zeros((2, 2), np.int64))
