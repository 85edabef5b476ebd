"""Bayesian SVD++ (after Rendle, Zhang and Koren 2019) by Gibbs sampling: BPMF's sampler with an implicit part.

A user's effective row is w_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j, where N(u) is the user's set of training movies and
each y_j a movie's implicit factors, with its own Normal-Wishart prior. A sweep draws the users' w given the movies
and y (BPMF's conditional with each user's prior mean shifted by their implicit part), then every y at once from
its exact joint Gaussian conditional, then the movies given the effective user rows (BPMF's conditional). The y are
coupled through the users they share, so they are drawn as one block by perturb-and-solve (Papandreou and Yuille
2010): the conditional's right-hand side with noise of the conditional's own precision added, solved by conjugate
gradients preconditioned with the conditional's diagonal, to a relative residual of `CG_TOLERANCE`.
"""

from __future__ import annotations

import torch

from cfexp.data.ratings import TensorPart
from cfexp.fit.gibbs_sampler import Sampler, csr, draw_rows, hyperparameters

CG_TOLERANCE = 1e-5
CG_MAX_STEPS = 200


class ImplicitSampler(Sampler):
    """Gibbs sweeps of Bayesian SVD++: the rows it returns for users are the effective ones (w + implicit part)."""

    def __init__(self, train: TensorPart, centred: torch.Tensor, user_rows, movie_rows, seed: int):
        super().__init__(train, centred, user_rows, movie_rows, seed)
        n_users, n_movies = len(user_rows), len(movie_rows)
        counts = torch.bincount(train.users, minlength=n_users).to(centred.dtype)
        weight = counts.clamp(min=1).rsqrt()[train.users]  # |N(u)|^-½ on each of the user's movies
        self.implicit = csr(torch.stack([train.users, train.movies]), weight, (n_users, n_movies))
        self.implicit_t = csr(torch.stack([train.movies, train.users]), weight, (n_movies, n_users))
        self.squared_t = csr(torch.stack([train.movies, train.users]), weight.square(), (n_movies, n_users))
        self.base_rows = user_rows  # [w_u, b_u]
        self.implicit_rows = torch.zeros(n_movies, user_rows.shape[1] - 1, device=centred.device)  # the y: start at 0
        self.cg_steps = 0  # taken by the last sweep's y draw

    def shift(self) -> torch.Tensor:
        """Each user's implicit part as a row offset: [|N(u)|^-½ Σ y_j, 0 for the bias]."""
        return torch.nn.functional.pad(self.implicit @ self.implicit_rows, (0, 1))

    def sweep(self, noise_precision: float) -> tuple[torch.Tensor, torch.Tensor, float]:
        prior = hyperparameters(self.base_rows, self.rng)
        gram, products, _ = self.users.conditional(self.movie_rows)
        shift = self.shift()
        effective = draw_rows(gram, products, prior, noise_precision, self.generator, prior_shift=shift)
        self.base_rows = effective - shift
        self.implicit_rows = self.draw_implicit(gram, products, noise_precision)
        self.user_rows = self.base_rows + self.shift()
        return self.user_rows, *self.draw_movies(self.user_rows, noise_precision)

    def draw_implicit(self, gram: torch.Tensor, products: torch.Tensor, noise_precision: float) -> torch.Tensor:
        """All y from p(y | w, movies): solve Q y = b + η with η ~ N(0, Q), Q = I ⊗ Λ + α Σ_u |N(u)|⁻¹ (1 1ᵀ) ⊗ S_u,
        where S_u = Σ v vᵀ over the user's rated movies (the factor block of the user's Gram)."""
        f = self.implicit_rows.shape[1]
        device = gram.device
        mean, precision = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in self.implicit_prior())
        movie_gram = gram[:, :f, :f]
        base = self.base_rows
        # Σ v (t − b_i − b_u − v·w) over the user's movies, from the Gram and products of the user's conditional
        residual = products[:, :f] - gram[:, :f, f] * base[:, f:] - torch.bmm(movie_gram, base[:, :f, None])[:, :, 0]
        pattern = self.users.pattern
        noise = torch.randn(pattern.values().shape, device=device, generator=self.generator) / noise_precision**0.5
        noisy = torch.sparse_csr_tensor(
            pattern.crow_indices(), pattern.col_indices(), noise, pattern.shape, check_invariants=False
        )
        residual += noisy @ self.movie_rows[:, :f]
        prior_noise = torch.randn(len(self.implicit_rows), f, device=device, generator=self.generator)
        rhs = (mean @ precision) + prior_noise @ torch.linalg.cholesky(precision).T
        rhs += noise_precision * (self.implicit_t @ residual)

        def apply(y: torch.Tensor) -> torch.Tensor:
            offsets = (self.implicit @ y)[:, :, None]
            return torch.add(
                y @ precision, self.implicit_t @ torch.bmm(movie_gram, offsets)[:, :, 0], alpha=noise_precision
            )

        diagonal = torch.add(
            precision.diagonal(), self.squared_t @ movie_gram.diagonal(dim1=1, dim2=2), alpha=noise_precision
        )
        return self._conjugate_gradients(apply, rhs, 1.0 / diagonal)

    def implicit_prior(self):
        return hyperparameters(self.implicit_rows, self.rng)

    def _conjugate_gradients(self, apply, rhs: torch.Tensor, inverse_diagonal: torch.Tensor) -> torch.Tensor:
        """Q y = rhs from the current y, preconditioned by Q's diagonal (Jacobi)."""

        def precondition(r: torch.Tensor) -> torch.Tensor:
            return r * inverse_diagonal

        y = self.implicit_rows.clone()
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
