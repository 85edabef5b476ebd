"""A set part of a Bayesian factorization machine: SVD++'s implicit part of a user (|N(u)|^-½ Σ_{j ∈ N(u)} y_j over
the user's train movies), or, mirrored, the flipped part of a movie (over the movie's train users).

The member rows (the y) are coupled through the owners they share, so they are drawn as one block by
perturb-and-solve (Papandreou and Yuille 2010): the conditional's right-hand side with noise of the conditional's
own precision added, solved by conjugate gradients preconditioned with the conditional's diagonal, to a relative
residual of `CG_TOLERANCE`. Only the rows a fit is given (train, and in a final fit validation) form the sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cfexp.fit.gibbs_blocks import hyperparameters
from cfexp.fit.sparse import Layout

CG_TOLERANCE = 1e-5
CG_MAX_STEPS = 200


class SetPart:
    """The owners' (users', or movies') set parts, over the members each one rated (or was rated by)."""

    def __init__(self, by_owner: Layout, by_member: Layout, owners: torch.Tensor, factors: int):
        """`by_owner` is the owners × members layout of the ratings, `by_member` its transpose, and `owners` each
        rating's owner."""
        n_members = by_owner.shape[1]
        counts = by_owner.offsets.diff().float()
        weight = counts.clamp(min=1).rsqrt()[owners]  # |N(owner)|^-½ on each of the owner's members
        self.spread = by_owner.matrix(weight)
        self.spread_t = by_member.matrix(weight)
        self.squared_t = by_member.matrix(weight.square())
        self.n_ratings = len(owners)
        self.rows = torch.zeros(n_members, factors, device=owners.device)  # the y: start at 0
        self.cg_steps = 0  # taken by the last draw

    def shift(self) -> torch.Tensor:
        """Each owner's set part as a row offset: [|N|^-½ Σ y, 0 for the bias]."""
        return torch.nn.functional.pad(self.spread @ self.rows, (0, 1))

    def prior(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return hyperparameters(self.rows, rng)

    def draw(
        self,
        gram: torch.Tensor,
        products: torch.Tensor,
        base: torch.Tensor,
        noise_products: Callable[[torch.Tensor], torch.Tensor],
        noise_precision: float,
        generator: torch.Generator,
        rng: np.random.Generator,
    ) -> torch.Tensor:
        """All y from p(y | everything else): solve Q y = b + η with η ~ N(0, Q), Q = I ⊗ Λ + α Σ_o |N(o)|⁻¹
        (1 1ᵀ) ⊗ S_o, where S_o = Σ p pᵀ over the owner's ratings' partners (the factor block of the owner's Gram,
        `gram`, beside `products` = Σ t p, from the owner's conditional; `base` the owner's rows less the set part;
        `noise_products(ε)` = Σ ε p over each owner's ratings)."""
        f = self.rows.shape[1]
        device = gram.device
        mean, precision = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in self.prior(rng))
        partner_gram = gram[:, :f, :f]
        # Σ p (t − b_o − p·w_o) over the owner's ratings
        residual = products[:, :f] - gram[:, :f, f] * base[:, f:] - torch.bmm(partner_gram, base[:, :f, None])[:, :, 0]
        noise = torch.randn(self.n_ratings, device=device, generator=generator) / noise_precision**0.5
        residual += noise_products(noise)
        prior_noise = torch.randn(len(self.rows), f, device=device, generator=generator)
        rhs = (mean @ precision) + prior_noise @ torch.linalg.cholesky(precision).T
        rhs += noise_precision * (self.spread_t @ residual)

        def apply(y: torch.Tensor) -> torch.Tensor:
            offsets = (self.spread @ y)[:, :, None]
            return torch.add(
                y @ precision, self.spread_t @ torch.bmm(partner_gram, offsets)[:, :, 0], alpha=noise_precision
            )

        diagonal = torch.add(
            precision.diagonal(), self.squared_t @ partner_gram.diagonal(dim1=1, dim2=2), alpha=noise_precision
        )
        self.rows = self._conjugate_gradients(apply, rhs, 1.0 / diagonal)
        return self.rows

    def _conjugate_gradients(self, apply, rhs: torch.Tensor, inverse_diagonal: torch.Tensor) -> torch.Tensor:
        """Q y = rhs from the current y, preconditioned by Q's diagonal (Jacobi)."""

        def precondition(r: torch.Tensor) -> torch.Tensor:
            return r * inverse_diagonal

        y = self.rows.clone()
        r = rhs - apply(y)
        z = precondition(r)
        p = z.clone()
        rz = float((r * z).sum())
        target = CG_TOLERANCE * float(rhs.norm())
        self.cg_steps = 0
        while float(r.norm()) > target and self.cg_steps < CG_MAX_STEPS:
            self.cg_steps += 1
            q = apply(p)
            step = rz / float((p * q).sum())
            y.add_(p, alpha=step)
            r.sub_(q, alpha=step)
            z = precondition(r)
            rz, previous = float((r * z).sum()), rz
            p = z.add_(p, alpha=rz / previous)
        return y
