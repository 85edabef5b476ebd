"""Ratings as implicit feedback, for the models that learn from which movies a user chose (EASE, iALS): the
positives (every training rating, or those at or above a threshold), each user's positives as a CSR on the device,
and how much memory the device has free for a fit that needs a dense movies × movies matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cfexp.data.ratings import TensorPart
from cfexp.errors import UserError


def check_threshold(positives: object) -> None:
    if not isinstance(positives, int | float) or isinstance(positives, bool) or positives < 0:
        raise UserError(f"positives must be a rating threshold >= 0 (0: every rating), got {positives!r}")


@dataclass(frozen=True)
class Positives:
    """The (user, movie) pairs that count as positives, and their ratings."""

    users: torch.Tensor
    movies: torch.Tensor
    ratings: torch.Tensor

    @classmethod
    def of(cls, train: TensorPart, threshold: float) -> Positives:
        if threshold <= 0:
            return cls(train.users, train.movies, train.ratings)
        keep = torch.nonzero(train.ratings >= threshold).flatten()  # found once, then three gathers
        return cls(*(t.index_select(0, keep) for t in (train.users, train.movies, train.ratings)))

    def __len__(self) -> int:
        return len(self.users)

    def csr(self, n_rows: int, n_cols: int, values: torch.Tensor | None = None, by_movie: bool = False):
        """Users × movies (movies × users with `by_movie`) as a sparse CSR of `values` (1 where not given)."""
        rows, cols = (self.movies, self.users) if by_movie else (self.users, self.movies)
        values = torch.ones(len(rows), device=rows.device) if values is None else values
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (n_rows, n_cols), check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def free_bytes(device: torch.device) -> int:
    """Memory a fit can still take on the device: CUDA's free memory, or the host's available memory."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB"
