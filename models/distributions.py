"""Diagonal Gaussians in (mean, log-variance) form: sampling, log-density, closed-form KL."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample mean + std * eps that gradients flow through (Kingma & Welling, 2014)."""
    return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, exp(logvar)); sum over the last axis yourself."""
    return -0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))


def kl_normal_standard(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean, exp(logvar)) || N(0, 1))."""
    return 0.5 * (torch.exp(logvar) + mean**2 - 1.0 - logvar)


def kl_normal_normal(
    mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p)))."""
    return 0.5 * (logvar_p - logvar_q + (torch.exp(logvar_q) + (mean_q - mean_p) ** 2) * torch.exp(-logvar_p) - 1.0)


def kl_diag_full(mean_q: torch.Tensor, logvar_q: torch.Tensor, loc: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, diag exp(logvar_q)) || N(loc, L L^T)) per row (summed over the last axis),
    for a lower-triangular ``scale_tril`` L with a positive diagonal."""
    D = mean_q.shape[-1]
    inv_l = torch.linalg.solve_triangular(scale_tril, torch.eye(D, dtype=mean_q.dtype, device=mean_q.device), upper=False)
    trace = (torch.exp(logvar_q) @ (inv_l**2).sum(0).unsqueeze(-1)).squeeze(-1)  # tr(S^-1 diag(var_q))
    maha = ((mean_q - loc) @ inv_l.T).pow(2).sum(-1)
    logdet_p = 2.0 * torch.log(torch.diagonal(scale_tril)).sum()
    return 0.5 * (trace + maha - D + logdet_p - logvar_q.sum(-1))


def fit_gaussian_to_mixture(means: torch.Tensor, logvars: torch.Tensor, jitter: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and Cholesky factor of the covariance of the equal-weight mixture of N(means_i, diag
    exp(logvars_i)) (rows i): the Gaussian closest to it in KL(mixture || Gaussian), which is also the
    Gaussian prior that maximises the ELBO's -E KL(q || prior) for those posteriors."""
    m = means.double()
    loc = m.mean(0)
    centred = m - loc
    cov = centred.T @ centred / m.shape[0] + torch.diag(torch.exp(logvars.double()).mean(0))
    cov = cov + jitter * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    return loc.to(means.dtype), torch.linalg.cholesky(cov).to(means.dtype)
