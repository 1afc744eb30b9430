"""The Disentangled Sequential Autoencoder (Yingzhen Li & Stephan Mandt, ICML 2018).

Generative model  p(x_1:T, z_1:T, f) = p(f) prod_t p(z_t | z_<t) p(x_t | z_t, f)
  p(f)            = N(0, I)  (or, optionally, N(m, S) fitted to the aggregate posterior: see fit_f_prior)
  p(z_t | z_<t)   = N(mu_t, sigma_t^2), (mu_t, sigma_t) from an LSTM over z_1 .. z_t-1
  p(x_t | z_t, f) = Bernoulli, Gaussian, Laplace or a per-pixel mixture of Gaussians, parameters from
                    a frame decoder on [z_t, f]

Inference
  q(f | x_1:T)        bidirectional LSTM over per-frame features
  q(z_t | x_t)        "factorised": an MLP on each frame's feature
  q(z_1:T | f, x_1:T) "full": bidirectional LSTM over [feature_t, f], then a forward RNN

ELBO (Li & Mandt 2018, eq. 8), one sample of f and z_1:T from q:
  E_q[log p(x_1:T | z_1:T, f)] - KL(q(f) || p(f)) - sum_t E_q(z_<t)[ KL(q(z_t) || p(z_t | z_<t)) ]

The prior in the last term is evaluated on the *posterior's own* z_<t (teacher forcing, one
batched LSTM call). Rolling the prior out on its own samples during training, as several public
implementations do, optimises a different objective; here roll-out is only used to generate.

Options beyond that model (each off by default): the paper's deterministic baselines
(``dynamics="lstm-f"`` / ``"lstm-c"``: one z ~ N(0, I) per sequence drives an LSTM the decoder
reads), a latent cycle term added to the ELBO (``cycle_weight``, :meth:`DSAE.cycle_loss`), and for
speech the paired terms (``pair_weight``, ``contrast_weight``), a same-recording adversary on z
(``adversary_weight``, :meth:`DSAE.adversary_loss`) and a same-recording decorrelation term on z
(``decorrelation_weight``, :meth:`DSAE.decorrelation_loss`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.config import DSAEConfig
from models.distributions import (
    LOG_2PI,
    fit_gaussian_to_mixture,
    gaussian_log_density,
    kl_diag_full,
    kl_normal_normal,
    kl_normal_standard,
    reparameterize,
)
from models.frames import ConvFrameEncoder, SpectrogramFrameEncoder, build_frame_codec


@dataclass
class Posterior:
    """Posterior parameters of f and z_1:T, and the values the decoder is given."""

    f_mean: torch.Tensor  # (B, f_dim)
    f_logvar: torch.Tensor  # (B, f_dim)
    z_mean: torch.Tensor  # (B, T, z_dim)
    z_logvar: torch.Tensor  # (B, T, z_dim)
    f: torch.Tensor  # (B, f_dim): a sample, or the mean when encoding deterministically
    z: torch.Tensor  # (B, T, z_dim)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


class _MixtureNLL(torch.autograd.Function):
    """-log sum_k pi_k prod_c N(x_c; mu_kc, s^2) per pixel, with its gradient written out: with
    responsibilities r_k (the posterior of the components given x), d/dlogit_k = pi_k - r_k and
    d/dmu_kc = r_k (mu_kc - x_c) / s^2. Takes the decoder's (B, T, K * (C + 1), H, W) output whole
    (K logits, then K colours).

    Written for the CPU's memory traffic, which is what this costs (the arithmetic is a few flops a
    pixel): all K colours' differences in one pass, kept for the backward pass; each log-sum-exp done
    by hand so that its exponentials also give the responsibilities and the weights (no second
    exponential, no log_softmax); and every exponent clamped at -87, below which fp32's exp(x) is
    less than its smallest normal number and the vectorised exp takes a slow path (25x slower on the
    AVX-512 CPU of sessions 12-13): the clamp changes a responsibility by less than 1e-37. On that CPU
    (batch 32 of 8 frames, K 3, forward and backward, timed ad hoc with a 12 ms copy of the input) this
    took 36 ms against 84 ms for the previous version, which had halved autograd's time through
    log_softmax and logsumexp."""

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


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x unchanged, but what is trained through it is pushed the other way, ``scale`` times as hard."""
    return _ReverseGradient.apply(x, scale)


class GaussianHead(nn.Module):
    """Linear layer to the mean and log-variance of a diagonal Gaussian."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, 2 * out_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 even under bf16 autocast: the samples, KLs and log-densities built on these need its precision
        mean, logvar = self.linear(h).float().chunk(2, dim=-1)
        # a soft floor and ceiling keeps exp(logvar) finite early in training
        return mean, logvar.clamp(-12.0, 8.0)


class DSAE(nn.Module):
    def __init__(self, config: DSAEConfig):
        super().__init__()
        self.config = cfg = config
        H = cfg.hidden_dim
        self.deterministic = cfg.dynamics != "stochastic"
        if cfg.f_prior == "fitted":  # p(f) = N(loc, L L^T): buffers, set by fit_f_prior, saved with the weights
            self.register_buffer("f_prior_loc", torch.zeros(cfg.f_dim))
            self.register_buffer("f_prior_scale_tril", torch.eye(cfg.f_dim))
        # the decoder reads z_t (stochastic) or the deterministic LSTM's state h_t (lstm-f, lstm-c)
        self.frame_encoder, self.frame_decoder = build_frame_codec(cfg, H if self.deterministic else None)
        # z gets a frame encoder of its own that sees less than f's does (see the config; the config
        # refuses a view of the other modality)
        if cfg.z_reduced_view:
            size = cfg.z_input_size or cfg.frame_size
            self.dynamic_frame_encoder = ConvFrameEncoder(cfg.channels, size, cfg.z_conv_width or cfg.conv_width, cfg.feature_dim)
        if cfg.z_centred:
            self.dynamic_frame_encoder = SpectrogramFrameEncoder(cfg.n_bins, cfg.hidden_dim, cfg.feature_dim)
        # q(f | x_1:T)
        self.static_lstm = nn.LSTM(cfg.feature_dim, H, batch_first=True, bidirectional=True)
        self.static_head = GaussianHead((4 if cfg.static_pool == "stats" else 2) * H, cfg.f_dim)
        # q(z_t | x_t) or q(z_1:T | f, x_1:T); the deterministic baselines: q(z | x_1:T), one z per sequence
        if self.deterministic:
            self.dynamic_lstm = nn.LSTM(cfg.feature_dim, H, batch_first=True, bidirectional=True)
            self.dynamic_head = GaussianHead(2 * H, cfg.z_dim)
            if cfg.dynamics == "lstm-f":  # h_0 = z (mapped to the state size), no input after that
                self.state_init = nn.Linear(cfg.z_dim, H)
                self.dynamics_lstm = nn.LSTM(1, H, batch_first=True)
            else:  # lstm-c: h_0 = 0, z the input at every step
                self.dynamics_lstm = nn.LSTM(cfg.z_dim, H, batch_first=True)
            return
        if cfg.posterior == "factorised":
            self.dynamic_mlp = nn.Sequential(nn.Linear(cfg.feature_dim, H), nn.LeakyReLU(0.2, inplace=True))
        else:
            self.dynamic_lstm = nn.LSTM(cfg.feature_dim + cfg.f_dim, H, batch_first=True, bidirectional=True)
            self.dynamic_rnn = nn.RNN(2 * H, H, batch_first=True)
        self.dynamic_head = GaussianHead(H, cfg.z_dim)
        # p(z_t | z_<t)
        self.prior_lstm = nn.LSTM(cfg.z_dim, H, batch_first=True)
        self.prior_head = GaussianHead(H, cfg.z_dim)
        if cfg.adversary_weight > 0:  # training only: reads z_t's posterior means, pooled over time
            self.z_adversary = nn.Sequential(nn.Linear(cfg.z_dim, H), nn.LeakyReLU(0.2), nn.Linear(H, H))

    # ----------------------------------------------------------------------------- encoding
    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, *frame_shape) -> (B, T, feature_dim), all frames in one encoder call."""
        B, T = x.shape[:2]
        return self.frame_encoder(x.reshape(B * T, *x.shape[2:])).view(B, T, -1)

    def _summary(self, lstm: nn.LSTM, features: torch.Tensor) -> torch.Tensor:
        """Forward state at the last frame and backward state at the first of a bidirectional LSTM."""
        out, _ = lstm(features)
        H = self.config.hidden_dim
        return torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1)

    def encode_static(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(f | x_1:T), from the static LSTM's outputs pooled as ``static_pool`` says."""
        pool = self.config.static_pool
        if pool == "last":
            return self.static_head(self._summary(self.static_lstm, features))
        out, _ = self.static_lstm(features)
        if pool == "mean":
            return self.static_head(out.mean(dim=1))
        std = (out.var(dim=1, unbiased=False) + 1e-5).sqrt()  # floored: finite gradients on constant outputs
        return self.static_head(torch.cat([out.mean(dim=1), std], dim=-1))

    def encode_dynamic(self, features: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z_t | x_t) (factorised) or q(z_1:T | f, x_1:T) (full), (B, T, z_dim). The deterministic
        baselines have one z per sequence, q(z | x_1:T); it is repeated over T, so every caller sees
        the same shapes (and :meth:`decode` reads the first step)."""
        if self.deterministic:
            mean, logvar = self.dynamic_head(self._summary(self.dynamic_lstm, features))
            T = features.shape[1]
            return mean.unsqueeze(1).expand(-1, T, -1), logvar.unsqueeze(1).expand(-1, T, -1)
        if self.config.posterior == "factorised":
            return self.dynamic_head(self.dynamic_mlp(features))
        f_rep = f.unsqueeze(1).expand(-1, features.shape[1], -1)
        h, _ = self.dynamic_lstm(torch.cat([features, f_rep], dim=-1))
        h, _ = self.dynamic_rnn(h)
        return self.dynamic_head(h)

    def colour_blind(self, x: torch.Tensor) -> torch.Tensor:
        """Grey frames for z's encoder: a random convex mix of the channels per sequence while
        training (so no fixed luminance code can identify colours), their plain mean otherwise."""
        B, C = x.shape[0], x.shape[2]
        if self.training:
            w = torch.distributions.Dirichlet(torch.ones(C, device=x.device)).sample((B,))
        else:
            w = torch.full((B, C), 1.0 / C, device=x.device)
        grey = torch.einsum("btchw,bc->bthw", x, w).unsqueeze(2)
        return grey.expand(-1, -1, C, -1, -1)

    #: a pixel whose brightest channel reaches this is part of the figure (Sprites' background is 0)
    SILHOUETTE_LEVEL = 0.05

    def silhouette(self, x: torch.Tensor) -> torch.Tensor:
        """Where a frame is not background, in [0, 1], for z's encoder: the brightest channel divided by
        SILHOUETTE_LEVEL and capped at 1 (0 on the background, 1 on all but the darkest figure pixels;
        soft and differentiable on decoded frames). Same shape as x (the mask repeated over the channels)."""
        mask = (x.amax(dim=2, keepdim=True) / self.SILHOUETTE_LEVEL).clamp(max=1.0)
        return mask.expand_as(x)

    def dynamic_features(self, x: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """Per-frame features for q(z): the shared ones, or z's own encoder on reduced frames."""
        cfg = self.config
        if cfg.z_centred:
            B, T = x.shape[:2]
            centred = x - x.mean(dim=1, keepdim=True)
            return self.dynamic_frame_encoder(centred.reshape(B * T, -1)).view(B, T, -1)
        if not cfg.z_reduced_view:
            return feats
        if cfg.z_silhouette:
            g = self.silhouette(x)
        else:
            g = self.colour_blind(x) if cfg.z_colour_blind else x
        B, T = g.shape[:2]
        g = g.reshape(B * T, *g.shape[2:])
        if cfg.z_input_size and cfg.z_input_size < cfg.frame_size:
            g = F.avg_pool2d(g, cfg.frame_size // cfg.z_input_size)
        return self.dynamic_frame_encoder(g).view(B, T, -1)

    def encode(self, x: torch.Tensor, sample: bool = False) -> Posterior:
        """Posterior of f and z_1:T for a batch of sequences x (B, T, *frame_shape).

        With ``sample=False`` the returned f and z are the posterior means (the full posterior
        is then conditioned on the mean of f); with ``sample=True`` they are reparameterised samples.
        """
        feats = self.frame_features(x)
        f_mean, f_logvar = self.encode_static(feats)
        f = reparameterize(f_mean, f_logvar) if sample else f_mean
        z_mean, z_logvar = self.encode_dynamic(self.dynamic_features(x, feats), f)
        if self.deterministic:  # one sample per sequence, repeated over T
            z = (reparameterize(z_mean[:, :1], z_logvar[:, :1]) if sample else z_mean[:, :1]).expand_as(z_mean)
        else:
            z = reparameterize(z_mean, z_logvar) if sample else z_mean
        return Posterior(f_mean, f_logvar, z_mean, z_logvar, f, z)

    # ----------------------------------------------------------------------------- decoding
    def dynamic_states(self, z: torch.Tensor) -> torch.Tensor:
        """What the frame decoder reads besides f: z_1:T itself, or for the deterministic baselines
        the LSTM states h_1:T driven by the sequence's z (its first step; (B, T, hidden_dim))."""
        if not self.deterministic:
            return z
        B, T = z.shape[:2]
        z0 = z[:, 0]
        if self.config.dynamics == "lstm-f":
            h0 = self.state_init(z0).unsqueeze(0)
            h, _ = self.dynamics_lstm(z.new_zeros(B, T, 1), (h0, torch.zeros_like(h0)))
        else:
            h, _ = self.dynamics_lstm(z0.unsqueeze(1).expand(-1, T, -1).contiguous())
        return h

    def decode_params(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Parameters of p(x_t | z_t, f) for every t: logits (Bernoulli) or means (Gaussian, Laplace)."""
        B, T = z.shape[:2]
        h = torch.cat([self.dynamic_states(z), f.unsqueeze(1).expand(-1, T, -1)], dim=-1).reshape(B * T, -1)
        out = self.frame_decoder(h)
        return out.view(B, T, *out.shape[1:])

    def mixture_parts(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A mixture decoder's (B, T, K * (C + 1), H, W) output as the components' weight logits
        (B, T, K, H, W) and colours (B, T, K, C, H, W)."""
        K, C = self.config.likelihood_components, self.config.channels
        B, T, _, H, W = params.shape
        return params[:, :, :K], params[:, :, K:].reshape(B, T, K, C, H, W)

    def decode(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x_1:T | z_1:T, f): pixel intensities in [0, 1] or spectrogram values. For the
        mixture likelihood, each pixel's most probable component's colour instead (the mixture's mean
        would blend the colours it keeps apart)."""
        params = self.decode_params(f, z)
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(params)
        if self.config.likelihood == "mixture":
            # each pixel's likeliest component (the first of equals, as argmax) by K - 1 comparisons: on
            # a CPU torch's argmax over this short, strided axis took ~0.19 s for 256 frames (session 13)
            logits, colours = self.mixture_parts(params)
            best, colour = logits[:, :, 0], colours[:, :, 0]
            for k in range(1, logits.shape[2]):
                better = logits[:, :, k] > best
                best = torch.where(better, logits[:, :, k], best)
                colour = torch.where(better.unsqueeze(2), colours[:, :, k], colour)
            return colour.clamp(0.0, 1.0)
        # a Gaussian's mean is unbounded; pixels are not
        return params.clamp(0.0, 1.0) if self.config.modality == "video" else params

    # ----------------------------------------------------------------------------- priors
    def prior_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced p(z_t | z_<t) for t = 1..T given z_1:T (B, T, z_dim), in one LSTM call.

        The LSTM reads [0, z_1, ..., z_T-1], so its output at t has seen exactly z_<t.
        """
        if self.deterministic:
            raise ValueError(f"a {self.config.dynamics} model has no learned prior over z_1:T; its p(z) is N(0, I)")
        shifted = F.pad(z[:, :-1], (0, 0, 1, 0))
        h, _ = self.prior_lstm(shifted)
        return self.prior_head(h)

    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_1:T) = sum_t log p(z_t | z_<t), one value per sequence."""
        mean, logvar = self.prior_params(z)
        return gaussian_log_density(z, mean, logvar).sum(dim=(1, 2))

    def sample_f(self, batch: int, generator: torch.Generator | None = None, standard: bool = False) -> torch.Tensor:
        """f ~ p(f): N(0, I), or the fitted N(m, S) unless ``standard``. The noise is drawn on the generator's device."""
        dev = next(self.parameters()).device
        eps = torch.randn(batch, self.config.f_dim, generator=generator, device=generator.device if generator is not None else dev)
        eps = eps.to(dev)
        if self.config.f_prior == "fitted" and not standard:
            return self.f_prior_loc + eps @ self.f_prior_scale_tril.T
        return eps

    def kl_f(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(q(f | x_1:T) || p(f)) per sequence."""
        if self.config.f_prior == "fitted":
            return kl_diag_full(mean, logvar, self.f_prior_loc, self.f_prior_scale_tril)
        return kl_normal_standard(mean, logvar).sum(-1)

    @torch.no_grad()
    def fit_f_prior(self, f_means: torch.Tensor, f_logvars: torch.Tensor) -> None:
        """Make p(f) the Gaussian N(m, S) closest to the aggregate posterior (1/N) sum_i q(f | x_i) of the
        given posterior parameters (N, f_dim): the M-step of the ELBO for p(f)'s mean and covariance,
        which leaves the encoder and decoder as they are and can only tighten the bound. Generation
        then draws f where the decoder was trained; :meth:`use_standard_f_prior` undoes it."""
        loc, tril = fit_gaussian_to_mixture(f_means.detach().float().cpu(), f_logvars.detach().float().cpu())
        dev = next(self.parameters()).device
        if self.config.f_prior != "fitted":
            self.config = dataclasses.replace(self.config, f_prior="fitted")
            self.register_buffer("f_prior_loc", loc.to(dev))
            self.register_buffer("f_prior_scale_tril", tril.to(dev))
        else:
            self.f_prior_loc.copy_(loc)
            self.f_prior_scale_tril.copy_(tril)

    def use_standard_f_prior(self) -> None:
        """Back to the paper's p(f) = N(0, I) (drops a fitted prior)."""
        if self.config.f_prior == "fitted":
            del self.f_prior_loc, self.f_prior_scale_tril
            self.config = dataclasses.replace(self.config, f_prior="standard")

    def rollout_prior(
        self,
        steps: int,
        context: torch.Tensor | None = None,
        batch: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample z from the learned prior for ``steps`` new steps, after optional context z (B, K, z_dim).

        Returns the context followed by the new samples, (B, K + steps, z_dim). Each new z_t is fed
        back as the next input: this is generation, not the training objective.
        """
        dev = next(self.parameters()).device
        if self.deterministic:  # one z drives the whole sequence: the context's, or a draw from N(0, I)
            if context is not None and context.shape[1] > 0:
                z0 = context[:, :1]
            else:
                z0 = torch.randn(batch, 1, self.config.z_dim, generator=generator, device=dev)
            return z0.expand(-1, (0 if context is None else context.shape[1]) + steps, -1)
        zs = []
        state = None
        prev = torch.zeros(batch if context is None else context.shape[0], 1, self.config.z_dim, device=dev)
        if context is not None and context.shape[1] > 0:
            zs.append(context)
            inputs = torch.cat([prev, context], dim=1)  # the LSTM has seen [0, z_1 .. z_K]
            h, state = self.prior_lstm(inputs)
            h = h[:, -1:]
        else:
            h, state = self.prior_lstm(prev)
        for i in range(steps):
            mean, logvar = self.prior_head(h)
            eps = torch.randn(mean.shape, generator=generator, device=dev)
            z_t = mean + torch.exp(0.5 * logvar) * eps
            zs.append(z_t)
            if i + 1 < steps:
                h, state = self.prior_lstm(z_t, state)
        return torch.cat(zs, dim=1)

    def sample_z(self, batch: int, steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """z_1:T ~ p(z_1:T), rolled out from the learned prior."""
        return self.rollout_prior(steps or self.config.seq_len, batch=batch, generator=generator)

    # ----------------------------------------------------------------------------- manipulation
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        post = self.encode(x)
        return self.decode(post.f, post.z)

    @torch.no_grad()
    def swap(self, content: torch.Tensor, motion: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Decode the static latent of ``content`` with the dynamic latents of ``motion``."""
        f = self.encode(content, sample=sample).f
        z = self.encode(motion, sample=sample).z
        return self.decode(f, z)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, context: int, steps: int, generator: torch.Generator | None = None):
        """Encode the first ``context`` frames, roll the prior forward ``steps`` frames, decode all."""
        post = self.encode(x[:, :context])
        z = self.rollout_prior(steps, context=post.z, generator=generator)
        return self.decode(post.f, z)

    # ----------------------------------------------------------------------------- objective
    def reconstruction_nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x_1:T | z_1:T, f) per sequence."""
        if self.config.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(params, x, reduction="none")
        elif self.config.likelihood == "laplace":
            b = self.config.likelihood_scale
            nll = (x - params).abs() / b + math.log(2 * b)
        elif self.config.likelihood == "mixture":  # -log sum_k pi_k prod_c N(x_c; mu_kc, s^2), per pixel
            cfg = self.config
            nll = _MixtureNLL.apply(params.float(), x.float(), cfg.likelihood_components, float(cfg.likelihood_scale))
        else:
            s = self.config.likelihood_scale
            nll = 0.5 * ((x - params) / s) ** 2 + (0.5 * LOG_2PI + math.log(s))
        return nll.flatten(1).sum(1)

    def loss(
        self, x: torch.Tensor, beta_f: float | None = None, beta_z: float | None = None, paired: bool = False,
        groups: torch.Tensor | None = None, hide_z: bool = False,
    ) -> dict:
        """Negative ELBO per sequence (averaged over the batch) and its terms.

        ``paired``: the batch's second half holds, in order, partners of its first half (another
        segment of the same recording); with ``pair_weight > 0`` each sequence is then also scored
        decoded from its own z_1:T and its partner's f, and with ``contrast_weight > 0`` f must pick
        out its partner (see the config). ``groups`` (B,): the recording of each sequence, so that
        two pairs of one recording are not taken for negatives of each other.

        ``hide_z``: the decoder gets zeros in place of z_1:T (also in the pair term; the KL terms are as usual, the latent
        cycle term is left out), so f alone must draw each sequence: the static-first phase of
        training (``dsae train --static-first N``), in which f learns the whole look before z is
        let in; without it a wide frame codec learns the hair style from z's silhouette view first
        (session 15) and f never takes it over."""
        cfg = self.config
        beta_f = cfg.beta_f if beta_f is None else beta_f
        beta_z = cfg.beta_z if beta_z is None else beta_z
        post = self.encode(x, sample=True)
        z_dec = torch.zeros_like(post.z) if hide_z else post.z  # what the decoder reads for z_1:T
        recon = self.reconstruction_nll(self.decode_params(post.f, z_dec), x).mean()
        kl_f = self.kl_f(post.f_mean, post.f_logvar).mean()
        if self.deterministic:  # one z per sequence against p(z) = N(0, I)
            kl_z = kl_normal_standard(post.z_mean[:, 0], post.z_logvar[:, 0]).sum(-1).mean()
        else:
            # prior scored on the posterior's own sample z_<t (teacher forcing)
            prior_mean, prior_logvar = self.prior_params(post.z)
            kl_z = kl_normal_normal(post.z_mean, post.z_logvar, prior_mean, prior_logvar).sum(dim=(1, 2)).mean()
        loss = recon + beta_f * kl_f + beta_z * kl_z
        out = {"loss": loss, "recon": recon, "kl_f": kl_f, "kl_z": kl_z, "elbo": -(recon + kl_f + kl_z)}
        if cfg.pair_weight > 0 and self.training and paired:
            B = x.shape[0]
            if B % 2:
                raise ValueError("a paired batch has an even number of sequences")
            f_partner = torch.roll(post.f, B // 2, dims=0)  # a_k <-> b_k
            out["pair"] = self.reconstruction_nll(self.decode_params(f_partner, z_dec), x).mean()
            out["loss"] = out["loss"] + cfg.pair_weight * out["pair"]
        if cfg.contrast_weight > 0 and self.training and paired:
            out["contrast"] = self.contrast_loss(post.f_mean, groups)
            out["loss"] = out["loss"] + cfg.contrast_weight * out["contrast"]
        if cfg.adversary_weight > 0 and self.training and paired:
            # the adversary learns at weight 1; the encoder gets its gradient reversed and scaled
            out["adversary"] = self.adversary_loss(reverse_gradient(post.z_mean, cfg.adversary_weight), groups)
            out["loss"] = out["loss"] + out["adversary"]
        if cfg.decorrelation_weight > 0 and self.training and paired:
            out["decorrelation"] = self.decorrelation_loss(post.z_mean)
            out["loss"] = out["loss"] + cfg.decorrelation_weight * out["decorrelation"]
        if cfg.cycle_weight > 0 and self.training and x.shape[0] > 1 and not hide_z:
            out["cycle"] = self.cycle_loss(post)
            out["loss"] = out["loss"] + cfg.cycle_weight * out["cycle"]
        return out

    def contrast_loss(self, f_mean: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """InfoNCE of a paired batch [a_1..a_n, b_1..b_n]: the cosine similarity of f(a_k) and f(b_k),
        divided by the temperature, against those of a_k with every other b_j (and of b_k with every
        other a_j); pairs of the same recording (``groups``) are left out of each other's negatives.
        Cross-entropy in nats, the mean of both directions over the n pairs."""
        B = f_mean.shape[0]
        if B % 2:
            raise ValueError("a paired batch has an even number of sequences")
        n = B // 2
        e = F.normalize(f_mean, dim=-1)
        sim = e[:n] @ e[n:].T / self.config.contrast_temperature
        if groups is not None:
            g = groups[:n]
            same = (g[:, None] == g[None, :]) & ~torch.eye(n, dtype=torch.bool, device=sim.device)
            sim = sim.masked_fill(same, float("-inf"))
        target = torch.arange(n, device=sim.device)
        return 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))

    def adversary_loss(self, z_mean: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """How well the adversary tells recordings apart from z alone: the InfoNCE of :meth:`contrast_loss`
        on its embedding of each segment's z_1:T means (a per-step network, averaged over the steps).
        Low when z carries what a recording's segments share; log(pairs) when it carries none of it."""
        return self.contrast_loss(self.z_adversary(z_mean).mean(dim=1), groups)

    @staticmethod
    def decorrelation_loss(z_mean: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
        """What a paired batch [a_1..a_n, b_1..b_n]'s z shares within recordings: each segment's z_1:T
        posterior means averaged over time, standardised per dimension over the whole batch (the cosine
        scoring of utterance means standardises them too), and the squared Frobenius norm of the (z x z)
        cross-correlation matrix of the a's with their partners. Zero when a segment's mean z says nothing
        linear about its partner's; about z_dim**2 / n from chance alone for independent segments."""
        B = z_mean.shape[0]
        if B % 2:
            raise ValueError("a paired batch has an even number of sequences")
        n = B // 2
        m = z_mean.mean(dim=1)
        m = (m - m.mean(dim=0)) / (m.std(dim=0) + eps)
        c = m[:n].T @ m[n:] / n
        return c.square().sum()

    def cycle_loss(self, post: Posterior) -> torch.Tensor:
        """Latent cycle consistency, an addition to the ELBO in the spirit of the follow-up work's
        mutual-information terms (InfoGAN's latent regression; C-DSVAE's, S3VAE's self-supervision).

        Half the batch decodes a *swapped* f (another sequence's posterior sample) with its own
        z_1:T; the other half decodes an f drawn from p(f). Both are encoded again, and the loss is
        the negative log-density, up to constants, of the latents that made each picture under a
        Gaussian centred on the new posterior means with the original posterior's variances
        (held constant): so "a few posterior standard deviations off" costs a few nats whatever the
        scale of a latent. The decoder is thereby taught to take the look from f alone (a swap must
        re-encode to the swapped f) and to draw z's motion whatever f it is given, including the
        prior samples that generation uses. Returns the mean over the batch.
        """
        B = post.f.shape[0]
        half = B // 2
        perm = torch.roll(torch.arange(B, device=post.f.device), 1)  # every sequence gets another's f
        f_target = post.f.detach()[perm]
        f_prior = self.sample_f(B - half).to(post.f.dtype)
        f_in = torch.cat([f_target[:half], f_prior], dim=0)
        z_target = post.z.detach()
        x_hat = self.decode(f_in, z_target)
        feats = self.frame_features(x_hat)
        f_mean, _ = self.encode_static(feats)
        z_mean, _ = self.encode_dynamic(self.dynamic_features(x_hat, feats), f_mean)
        z_prec = torch.exp(-post.z_logvar.detach())
        nll_z = 0.5 * ((z_mean - z_target) ** 2 * z_prec).sum(dim=(1, 2))
        # the f term only for the swapped half: a prior sample's unused dimensions cannot be read back
        f_prec = torch.exp(-post.f_logvar.detach()[perm][:half])
        nll_f = 0.5 * ((f_mean[:half] - f_target[:half]) ** 2 * f_prec).sum(-1)
        return nll_z.mean() + nll_f.sum() / B

    def forward(
        self, x: torch.Tensor, beta_f: float | None = None, beta_z: float | None = None, paired: bool = False,
        groups: torch.Tensor | None = None, hide_z: bool = False,
    ) -> dict:
        # the loss is the forward pass, so DistributedDataParallel and torch.compile can wrap the model
        return self.loss(x, beta_f=beta_f, beta_z=beta_z, paired=paired, groups=groups, hide_z=hide_z)
