"""Compressed sparse rows of a training part, built by counting sorts (cfexp.fit.sparse_kernels) and kept on the
part, so that every trial of a study (which fits on the same part) reuses them instead of sorting millions of
entries again.

A `Layout` is where each entry of (rows, cols) lands in their CSR: matrices of any values on the same pattern share
its row offsets and column indices, and take their values in its order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from cfexp.data.ratings import TensorPart

T = TypeVar("T")

# The products used here are stable. A filter for the whole process, not catch_warnings around the call: that one
# is not thread-safe, and the tracker's thread leaving its own catch_warnings put the old filters back mid-sweep.
warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)


@dataclass(frozen=True)
class Layout:
    offsets: torch.Tensor  # row r's entries are [offsets[r], offsets[r + 1])
    columns: torch.Tensor
    order: torch.Tensor | None  # the input entry at each CSR position (None once the values are placed)
    shape: tuple[int, int]

    def __len__(self) -> int:
        return len(self.columns)

    def matrix(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """A sparse CSR tensor of `values` (given in the input's order; 1 where not given) on this pattern."""
        return self.placed(torch.ones(len(self), device=self.columns.device) if values is None else values[self.order])

    def placed(self, values: torch.Tensor) -> torch.Tensor:
        """A sparse CSR tensor of `values` given in the CSR's own order."""
        return torch.sparse_csr_tensor(self.offsets, self.columns, values, self.shape, check_invariants=False)


def layout(rows: torch.Tensor, cols: torch.Tensor, shape: tuple[int, int]) -> Layout:
    """The CSR layout of the entries (rows[i], cols[i]), columns ascending within a row. Entries must be distinct
    (a rating per user and movie): a repeated one would be two entries of the same cell."""
    if rows.device.type == "cpu":
        from cfexp.fit.sparse_kernels import lexicographic_order

        order = torch.from_numpy(lexicographic_order(rows.numpy(), cols.numpy(), *shape))
    else:
        order = torch.argsort(rows * shape[1] + cols)
    return Layout(_offsets(rows, shape[0]), cols[order], order, shape)


def grouped(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> tuple[Layout, torch.Tensor]:
    """A CSR layout whose rows are grouped, each row's entries in their input order, and `values` in its order: for
    a reader that needs no column order (iALS's fused loop), one counting pass, or none where the rows come in
    order already."""
    offsets = _offsets(rows, shape[0])
    if rows.device.type != "cpu":
        order = torch.argsort(rows, stable=True)
        return Layout(offsets, cols[order], order, shape), values[order]
    if _ascending(rows):
        return Layout(offsets, cols, torch.arange(len(rows)), shape), values
    from cfexp.fit.sparse_kernels import grouped_by_row

    order, placed_cols, placed = (
        torch.from_numpy(a) for a in grouped_by_row(rows.numpy(), shape[0], cols.numpy(), values.numpy())
    )
    return Layout(offsets, placed_cols, order, shape), placed


def by_row(rows: torch.Tensor, n_rows: int) -> Layout:
    """The layout of a rows × entries matrix with entry i in column i (each entry its own column)."""
    order = _row_order(rows, n_rows)
    return Layout(_offsets(rows, n_rows), order, order, (n_rows, len(rows)))


def _row_order(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """The entries stably sorted by row."""
    if rows.device.type != "cpu":
        return torch.argsort(rows, stable=True)
    if _ascending(rows):
        return torch.arange(len(rows))
    from cfexp.fit.sparse_kernels import stable_order

    return torch.from_numpy(stable_order(rows.numpy(), n_rows, np.arange(len(rows))))


def _ascending(rows: torch.Tensor) -> bool:
    return not len(rows) or bool((rows[1:] >= rows[:-1]).all())


def _offsets(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    offsets = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    torch.cumsum(torch.bincount(rows, minlength=n_rows), 0, out=offsets[1:])
    return offsets


def kept(part: TensorPart, key: tuple, build: Callable[[], T]) -> T:
    """What `build` makes of `part`, made once per part and key (the part's tensors are never changed in place)."""
    if key not in part.derived:
        part.derived[key] = build()
    return part.derived[key]


def ratings_layout(part: TensorPart, by_movie: bool, shape: tuple[int, int]) -> Layout:
    """Users × movies (movies × users `by_movie`) of a part's ratings, kept on the part."""
    rows, cols = (part.movies, part.users) if by_movie else (part.users, part.movies)
    return kept(part, ("ratings layout", by_movie, shape), lambda: layout(rows, cols, shape))
