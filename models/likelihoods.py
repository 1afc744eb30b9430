"""The likelihoods p(x_t | z_t, f) a DSAE can have, from the frame decoder's output ``params``.

  bernoulli  params are logits; the decoded frame is their sigmoid
  gaussian   params are means, the scale is fixed (``likelihood_scale``)
  mixture    (video) params are K weight logits and K colours per pixel, (B, T, K * (C + 1), H, W),
             each colour a Gaussian of the fixed scale; the decoded frame shows each pixel's likeliest
             component's colour, since the mixture's mean would blend the colours it keeps apart
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models.distributions import LOG_2PI


class _MixtureNLL(torch.autograd.Function):
    """-log sum_k pi_k prod_c N(x_c; mu_kc, s^2) per pixel, with its gradient written out: with
    responsibilities r_k (the posterior of the components given x), d/dlogit_k = pi_k - r_k and
    d/dmu_kc = r_k (mu_kc - x_c) / s^2. Takes the decoder's (B, T, K * (C + 1), H, W) output whole
    (K logits, then K colours).

    Written for memory traffic, which is what this costs (the arithmetic is a few flops a pixel): all
    K colours' differences in one pass, kept for the backward pass; each log-sum-exp done by hand so
    that its exponentials also give the responsibilities and the weights (no second exponential, no
    log_softmax); and every exponent clamped at -87, below which fp32's exp(x) is less than its
    smallest normal number and a CPU's vectorised exp takes a slow path. The clamp changes a
    responsibility by less than 1e-37."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, x: torch.Tensor, K: int, s: float) -> torch.Tensor:
        C = x.shape[2]
        logits = params[:, :, :K]
        d = torch.sub(params[:, :, K:].unflatten(2, (K, C)), x.unsqueeze(2))  # mu_kc - x_c: (B, T, K, C, H, W)
        a = d.square().sum(3).mul_(-0.5 / (s * s)).add_(logits)  # logit_k - |x - mu_k|^2 / 2s^2
        m = a.amax(2, keepdim=True)
        r = a.sub_(m).clamp_(min=-87.0).exp_()
        total = r.sum(2, keepdim=True)
        r.div_(total)  # the responsibilities
        m_pi = logits.amax(2, keepdim=True)
        pi = (logits - m_pi).clamp_(min=-87.0).exp_()
        total_pi = pi.sum(2, keepdim=True)
        pi.div_(total_pi)  # the weights
        ctx.save_for_backward(d, r, pi)
        ctx.s = s
        log_p = (m + total.log_()).sub_(m_pi).sub_(total_pi.log_()).squeeze(2)  # log sum_k pi_k exp(-|x - mu_k|^2 / 2s^2)
        return (C * (0.5 * LOG_2PI + math.log(s))) - log_p

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        d, r, pi = ctx.saved_tensors
        K, C = d.shape[2], d.shape[3]
        g = grad.unsqueeze(2)
        out = torch.empty(*d.shape[:2], K * (C + 1), *d.shape[4:], dtype=d.dtype, device=d.device)
        torch.sub(pi, r, out=out[:, :, :K]).mul_(g)
        rg = (r * g).mul_(1.0 / (ctx.s * ctx.s))
        torch.mul(d, rg.unsqueeze(3), out=out[:, :, K:].unflatten(2, (K, C)))
        return out, None, None, None


class _GaussianNLL(torch.autograd.Function):
    """Per sequence, sum 0.5 ((x - mu) / s)^2 + log(s sqrt(2 pi)) over every value, and with ``emphasis``
    (B, T, 1, H, W) also the same sum with each pixel's terms weighted. Returns (B,) or ((B,), (B,)).

    Written for memory traffic, which is what this costs on a CPU: the difference x - mu is taken once and
    kept for the backward pass, whose gradient, (mu - x) / s^2 times (1 + each pixel's weight, scaled by the
    two sums' incoming gradients), is one pass; torch's autograd of the same expression makes several more.
    The emphasis is a constant weight (no gradient reaches it)."""

    @staticmethod
    def forward(ctx, params: torch.Tensor, x: torch.Tensor, s: float, emphasis: torch.Tensor | None):
        d = params - x if params.dtype == x.dtype else params.float() - x.float()
        rest = tuple(range(1, d.dim()))
        const = 0.5 * LOG_2PI + math.log(s)
        sq = d.square()
        ctx.save_for_backward(d, emphasis)
        ctx.s, ctx.weighted, ctx.params_dtype = s, emphasis is not None, params.dtype
        nll = sq.sum(rest).mul_(0.5 / (s * s)).add_(d[0].numel() * const)
        if emphasis is None:
            return nll
        w = emphasis.to(d.dtype)
        weighted = (sq.sum(2, keepdim=True) * w).sum(rest).mul_(0.5 / (s * s))  # each pixel's channels, weighted
        weighted = weighted.add_(w.sum(rest).mul_(d.shape[2] * const))
        return nll, weighted

    @staticmethod
    def backward(ctx, grad_nll: torch.Tensor, grad_weighted: torch.Tensor | None = None):
        d, w = ctx.saved_tensors
        inv = 1.0 / (ctx.s * ctx.s)
        shape = (-1,) + (1,) * (d.dim() - 1)
        if ctx.weighted and grad_weighted is not None:
            scale = (grad_weighted.view(shape) * w.to(d.dtype)).add_(grad_nll.view(shape)).mul_(inv)  # (B, T, 1, H, W)
        else:
            scale = grad_nll.view(shape) * inv
        g = d * scale
        grad_params = g.to(ctx.params_dtype) if ctx.needs_input_grad[0] else None
        grad_x = g.neg() if ctx.needs_input_grad[1] else None
        return grad_params, grad_x, None, None


def reconstruction_nll(cfg, params: torch.Tensor, x: torch.Tensor, emphasis: torch.Tensor | None = None):
    """-log p(x_1:T | z_1:T, f) per sequence, for a config's likelihood.

    With ``emphasis`` (per-pixel weights, ``(B, T, 1, H, W)``) also the same sum with each pixel's
    term weighted: returns ``(nll, weighted)``."""
    if cfg.likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(params, x, reduction="none")
    elif cfg.likelihood == "mixture":
        nll = _MixtureNLL.apply(params.float(), x.float(), cfg.likelihood_components, float(cfg.likelihood_scale))
    else:  # the emphasis is a weight, never differentiated
        return _GaussianNLL.apply(params, x, float(cfg.likelihood_scale), None if emphasis is None else emphasis.detach())
    if emphasis is None:
        return nll.flatten(1).sum(1)
    w = emphasis if nll.dim() == emphasis.dim() else emphasis.squeeze(2)  # the mixture's nll has no channel axis
    return nll.flatten(1).sum(1), (nll * w).flatten(1).sum(1)


def mixture_parts(params: torch.Tensor, K: int, C: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixture decoder's (B, T, K * (C + 1), H, W) output as the components' weight logits
    (B, T, K, H, W) and colours (B, T, K, C, H, W)."""
    B, T, _, H, W = params.shape
    return params[:, :, :K], params[:, :, K:].reshape(B, T, K, C, H, W)


def likeliest_colour(params: torch.Tensor, K: int, C: int) -> torch.Tensor:
    """Each pixel's likeliest component's colour (the first of equals, as argmax), (B, T, C, H, W).
    Found by K - 1 comparisons: on a CPU, argmax over this short, strided axis is slow."""
    logits, colours = mixture_parts(params, K, C)
    best, colour = logits[:, :, 0], colours[:, :, 0]
    for k in range(1, K):
        better = logits[:, :, k] > best
        best = torch.where(better, logits[:, :, k], best)
        colour = torch.where(better.unsqueeze(2), colours[:, :, k], colour)
    return colour


def decoded_frames(cfg, params: torch.Tensor) -> torch.Tensor:
    """The frames a decoder's output stands for: pixel intensities in [0, 1] or spectrogram values."""
    if cfg.likelihood == "bernoulli":
        return torch.sigmoid(params)
    if cfg.likelihood == "mixture":
        return likeliest_colour(params, cfg.likelihood_components, cfg.channels).clamp(0.0, 1.0)
    # a Gaussian's mean is unbounded; pixels are not
    return params.clamp(0.0, 1.0) if cfg.modality == "video" else params
