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
