"""Terms a DSAE's training loss may add to the paper's ELBO, each off by default (weight 0).

  cycle_loss     latent cycle consistency (``cycle_weight``): decoded swaps and prior samples must
                 encode back to the latents that made them
  pair_loss      same-recording reconstruction (``pair_weight``, speech): each segment is also
                 drawn from its own z_1:T and the f of another segment of its recording
  contrast_loss  InfoNCE on f (``contrast_weight``, speech): f picks out its partner segment
  mmd_standard   the aggregate posterior of f matched to N(0, I) (``f_mmd_weight``)

The pair and contrast terms read a *paired* batch [a_1..a_n, b_1..b_n], where b_k is another
segment of a_k's recording. :meth:`models.dsae.DSAE.loss` calls these while training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from models.dsae import DSAE, Posterior

# temperature of the cosine similarities of contrast_loss
CONTRAST_TEMPERATURE = 0.1


def _halves(batch: int) -> int:
    if batch % 2:
        raise ValueError("a paired batch has an even number of sequences")
    return batch // 2


def pair_loss(model: "DSAE", post: "Posterior", x: torch.Tensor, z_dec: torch.Tensor) -> torch.Tensor:
    """-log p(x_1:T | z_1:T, f') averaged over a paired batch, with f' the partner's f sample (a_k <->
    b_k) and z_1:T what the decoder reads for this sequence (``z_dec``: the posterior sample, or zeros
    in the static-first phase). After the FHVAE's utterance-level latent (Hsu et al. 2017): f keeps
    what the whole recording shares."""
    f_partner = torch.roll(post.f, _halves(x.shape[0]), dims=0)
    return model.reconstruction_nll(model.decode_params(f_partner, z_dec), x).mean()


def contrast_loss(f_mean: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE of a paired batch [a_1..a_n, b_1..b_n]: the cosine similarity of f(a_k) and f(b_k),
    divided by CONTRAST_TEMPERATURE, against those of a_k with every other b_j (and of b_k with every
    other a_j); pairs of the same recording (``groups`` (B,), the recording of each sequence) are left
    out of each other's negatives. Cross-entropy in nats, the mean of both directions over the n
    pairs. As C-DSVAE (Bai et al. 2021) contrasts its static latent."""
    n = _halves(f_mean.shape[0])
    e = F.normalize(f_mean, dim=-1)
    sim = e[:n] @ e[n:].T / CONTRAST_TEMPERATURE
    if groups is not None:
        g = groups[:n]
        same = (g[:, None] == g[None, :]) & ~torch.eye(n, dtype=torch.bool, device=sim.device)
        sim = sim.masked_fill(same, float("-inf"))
    target = torch.arange(n, device=sim.device)
    return 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))


def mmd_standard(f: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Unbiased squared maximum mean discrepancy between the rows of ``f`` (B, D) and B draws of
    N(0, I), with the inverse multiquadratic kernel C / (C + |a - b|^2) summed over the scales
    C = 2 D s, s in MMD_SCALES (as WAE-MMD, Tolstikhin et al. 2018). Zero in expectation when the
    rows are themselves N(0, I)."""
    B, D = f.shape
    p = torch.randn(B, D, generator=generator, device=f.device, dtype=f.dtype)
    both = torch.cat([f, p], dim=0)
    d2 = torch.cdist(both, both).pow(2)
    k = sum(2 * D * s / (2 * D * s + d2) for s in MMD_SCALES)
    off = 1.0 - torch.eye(B, device=f.device, dtype=f.dtype)
    kqq, kpp, kqp = k[:B, :B], k[B:, B:], k[:B, B:]
    return ((kqq * off).sum() + (kpp * off).sum()) / (B * (B - 1)) - 2 * kqp.mean()


# kernel scales of mmd_standard, relative to 2 * D
MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def cycle_loss(model: "DSAE", post: "Posterior") -> torch.Tensor:
    """Latent cycle consistency, in the spirit of the follow-up work's mutual-information terms
    (InfoGAN's latent regression; C-DSVAE's, S3VAE's self-supervision).

    Half the batch decodes a *swapped* f (another sequence's posterior sample) with its own z_1:T;
    the other half decodes an f drawn from p(f). Both are encoded again, and the loss is the negative
    log-density, up to constants, of the latents that made each picture under a Gaussian centred on
    the new posterior means with the original posterior's variances (held constant): so "a few
    posterior standard deviations off" costs a few nats whatever the scale of a latent (``cycle_floor``
    widens each standard deviation by a share of that latent's spread over the batch). The decoder
    is thereby taught to take the look from f alone (a swap must re-encode to the swapped f) and to
    draw z's motion whatever f it is given, including the prior samples that generation uses.
    Returns the mean over the batch.
    """
    B = post.f.shape[0]
    half = B // 2
    perm = torch.roll(torch.arange(B, device=post.f.device), 1)  # every sequence gets another's f
    f_target = post.f.detach()[perm]
    f_prior = model.sample_f(B - half).to(post.f.dtype)
    f_in = torch.cat([f_target[:half], f_prior], dim=0)
    z_target = post.z.detach()
    x_hat = model.decode(f_in, z_target)
    read_back = model.encode(x_hat)  # posterior means, z's conditioned on f's
    f_mean, z_mean = read_back.f_mean, read_back.z_mean
    z_var = torch.exp(post.z_logvar.detach())
    f_var = torch.exp(post.f_logvar.detach()[perm][:half])
    share = model.config.cycle_floor
    if share > 0:  # the yardstick widened by a share of each latent's spread over the batch
        z_var = z_var + share**2 * post.z_mean.detach().flatten(0, 1).var(dim=0)
        f_var = f_var + share**2 * post.f_mean.detach().var(dim=0)
    nll_z = 0.5 * ((z_mean - z_target) ** 2 / z_var).sum(dim=(1, 2))
    # the f term only for the swapped half: a prior sample's unused dimensions cannot be read back
    nll_f = 0.5 * ((f_mean[:half] - f_target[:half]) ** 2 / f_var).sum(-1)
    return nll_z.mean() + nll_f.sum() / B
