"""The blocks every Gibbs sampler here is built of: Normal-Wishart hyperparameters, a batch of rows drawn from their
Gaussian conditionals in one Cholesky solve."""

from __future__ import annotations

import numpy as np
import torch


def _wishart(df: float, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One Wishart(df, scale) draw by Bartlett's decomposition. (torch's Wishart imports sympy on first use,
    which alone costs more than a whole short fit.)"""
    dim = len(scale)
    bartlett = np.tril(rng.standard_normal((dim, dim)), -1)
    bartlett[np.diag_indices(dim)] = np.sqrt(rng.chisquare(df - np.arange(dim)))
    factor = np.linalg.cholesky(scale) @ bartlett
    return factor @ factor.T


def hyperparameters(rows: torch.Tensor, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean, precision) of the rows' Gaussian prior, drawn from its Normal-Wishart posterior.

    The hyperprior is BPMF's: mean 0 with beta0 = 2, Wishart with dim degrees of freedom and identity scale."""
    n, dim = rows.shape
    x = rows.double()
    mean = x.mean(0)
    centred = x - mean
    scatter, mean = (centred.T @ centred).cpu().numpy(), mean.cpu().numpy()
    beta0, nu0 = 2.0, dim
    beta_n, nu_n = beta0 + n, nu0 + n
    scale_inv = np.eye(dim) + scatter + (beta0 * n / beta_n) * np.outer(mean, mean)
    scale = np.linalg.inv(scale_inv)
    precision = _wishart(nu_n, (scale + scale.T) / 2, rng)
    chol = np.linalg.cholesky(beta_n * precision)
    draw = n * mean / beta_n + np.linalg.solve(chol.T, rng.standard_normal(dim))
    return draw, precision


def draw_rows(
    gram: torch.Tensor,
    target_products: torch.Tensor,
    prior: tuple[np.ndarray, np.ndarray],
    noise_precision: float,
    generator: torch.Generator,
    prior_shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Every row from its Gaussian conditional: precision Λ + α Σ p pᵀ, mean precision⁻¹ (α Σ t p + Λ μ).
    `prior_shift` moves each row's prior mean μ by its own offset (SVD++'s implicit part)."""
    n, dim = target_products.shape
    device = gram.device
    prior_mean, prior_precision = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in prior)
    precision = torch.add(prior_precision, gram, alpha=noise_precision)
    mean = prior_mean if prior_shift is None else prior_shift + prior_mean
    rhs = torch.add(mean @ prior_precision, target_products, alpha=noise_precision)
    chol, info = torch.linalg.cholesky_ex(precision)
    if bool(info.any()):
        raise FloatingPointError("a row's posterior precision is not positive definite")
    # x = P⁻¹ rhs + L⁻ᵀ z, with P = L Lᵀ: solve L w = rhs, add z, solve Lᵀ x = w + z.
    noise = torch.randn(n, dim, 1, device=device, generator=generator)
    half = torch.linalg.solve_triangular(chol, rhs[:, :, None], upper=False).add_(noise)
    return torch.linalg.solve_triangular(chol.mT, half, upper=True)[:, :, 0]
