"""The Disentangled Sequential Autoencoder (Yingzhen Li & Stephan Mandt, ICML 2018).

Generative model  p(x_1:T, z_1:T, f) = p(f) prod_t p(z_t | z_<t) p(x_t | z_t, f)
  p(f)            = N(0, I)  (or, optionally, N(m, S) fitted to the aggregate posterior: see fit_f_prior)
  p(z_t | z_<t)   = N(mu_t, sigma_t^2), (mu_t, sigma_t) from an LSTM over z_1 .. z_t-1
  p(x_t | z_t, f) = Bernoulli, Gaussian or a per-pixel mixture of Gaussians (models.likelihoods),
                    parameters from a frame decoder on [z_t, f]

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
reads), a frame encoder of z's own on a reduced view of the frames (``z_silhouette``,
``z_input_size``), and terms added to the ELBO while training (``cycle_weight``, ``pair_weight``,
``contrast_weight``), which live in :mod:`models.objectives`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models import objectives
from models.config import DSAEConfig
from models.distributions import (
    fit_gaussian_to_mixture,
    gaussian_log_density,
    kl_diag_full,
    kl_normal_normal,
    kl_normal_standard,
    reparameterize,
)
from models.frames import ConvFrameEncoder, build_frame_codec, scaled_grid
from models.likelihoods import decoded_frames, mixture_parts, reconstruction_nll


@dataclass
class Posterior:
    """Posterior parameters of f and z_1:T, and the values the decoder is given."""

    f_mean: torch.Tensor  # (B, f_dim)
    f_logvar: torch.Tensor  # (B, f_dim)
    z_mean: torch.Tensor  # (B, T, z_dim)
    z_logvar: torch.Tensor  # (B, T, z_dim)
    f: torch.Tensor  # (B, f_dim): a sample, or the mean when encoding deterministically
    z: torch.Tensor  # (B, T, z_dim)


def lower_median(x: torch.Tensor, dim: int) -> torch.Tensor:
    """The lower median along ``dim`` (the value torch.median gives), keeping the dimension.

    Up to 32 values, by a sorting network of elementwise minima and maxima (odd-even transposition):
    exact, and on a CPU about ten times faster than torch.sort along a short, strided axis. A graph
    being traced for export takes the middle of a sort instead, so it holds for any length, and ONNX
    (which has no median) takes it too."""
    n = x.shape[dim]
    if n > 32 or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return x.sort(dim=dim).values.narrow(dim, (n - 1) // 2, 1)
    xs = list(x.unbind(dim))
    for r in range(n):
        for i in range(r % 2, n - 1, 2):
            xs[i], xs[i + 1] = torch.minimum(xs[i], xs[i + 1]), torch.maximum(xs[i], xs[i + 1])
    return xs[(n - 1) // 2].unsqueeze(dim)


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
        # z gets a frame encoder of its own that sees less than f's does (video only, as the config checks)
        if cfg.z_reduced_view:
            size = cfg.z_input_size or cfg.frame_size
            self.dynamic_frame_encoder = ConvFrameEncoder(cfg.channels, size, cfg.z_conv_width or cfg.conv_width, cfg.feature_dim)
        # f's encoder also sees a window that follows what moves (video only, as the config checks)
        if cfg.f_object_view:
            self.object_frame_encoder = ConvFrameEncoder(cfg.channels + 1, self.object_window_size, cfg.conv_width, cfg.feature_dim)
        # q(f | x_1:T)
        self.static_lstm = nn.LSTM(cfg.feature_dim, H, batch_first=True, bidirectional=True)
        self.static_head = GaussianHead(2 * H, cfg.f_dim)
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
        if cfg.prior_components > 1:  # logits, means and log-variances of the mixture's components
            self.prior_head = nn.Linear(H, cfg.prior_components * (1 + 2 * cfg.z_dim))
        else:
            self.prior_head = GaussianHead(H, cfg.z_dim)

    # ----------------------------------------------------------------------------- encoding
    def frame_features(self, x: torch.Tensor, moving: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, *frame_shape) -> (B, T, feature_dim), all frames in one encoder call; with
        ``f_object_view`` plus the features of :meth:`object_window` (``moving``: :meth:`moving` of x
        where the caller has it)."""
        B, T = x.shape[:2]
        feats = self.frame_encoder(x.reshape(B * T, *x.shape[2:])).view(B, T, -1)
        if self.config.f_object_view:
            window = self.object_window(x, self.moving(x) if moving is None else moving, with_moving=True)
            feats = feats + self.object_frame_encoder(window.reshape(B * T, *window.shape[2:])).view(B, T, -1)
        return feats

    @property
    def object_window_size(self) -> int:
        """The side of :meth:`object_window`'s frames: half the frame's, and at least 16 pixels."""
        return max(16, self.config.frame_size // 2)

    def object_window(self, x: torch.Tensor, moving: torch.Tensor, with_moving: bool = False) -> torch.Tensor:
        """For each frame, the window of half-width ``object_scale`` (a share of the frame's) centred on
        the centroid of what moves (``moving``, as :meth:`moving` gives it); on a frame where nothing
        moves, the frame's centre. (B, T, C, S, S) with S = :attr:`object_window_size`; ``with_moving``
        adds the window of ``moving`` as one more channel (colour-blind, it outlines the figure)."""
        B, T, C, H, W = x.shape
        w = moving[:, :, 0].reshape(B * T, H, W).detach()
        w = w + 1e-3 / (H * W)  # where nothing moves, the centroid of an even weight: the centre
        ys = torch.linspace(-1 + 1 / H, 1 - 1 / H, H, device=x.device, dtype=w.dtype)
        xs = torch.linspace(-1 + 1 / W, 1 - 1 / W, W, device=x.device, dtype=w.dtype)
        total = w.sum((1, 2))
        cx = (w.sum(1) * xs).sum(1) / total
        cy = (w.sum(2) * ys).sum(1) / total
        S = self.object_window_size
        src = x.reshape(B * T, C, H, W)
        if with_moving:
            src = torch.cat([src, moving[:, :, :1].reshape(B * T, 1, H, W).to(x.dtype)], dim=1)
        grid = scaled_grid(self.config.object_scale, torch.stack([cx, cy], dim=-1).to(x.dtype), S, S)
        out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(B, T, src.shape[1], S, S)

    def _summary(self, lstm: nn.LSTM, features: torch.Tensor) -> torch.Tensor:
        """Forward state at the last frame and backward state at the first of a bidirectional LSTM."""
        out, _ = lstm(features)
        H = self.config.hidden_dim
        return torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1)

    def encode_static(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(f | x_1:T), from the static LSTM's forward state at the last frame and backward state at the first."""
        return self.static_head(self._summary(self.static_lstm, features))

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

    #: a pixel whose brightest channel reaches this is part of the figure (Sprites' background is 0)
    SILHOUETTE_LEVEL = 0.05

    def silhouette(self, x: torch.Tensor) -> torch.Tensor:
        """Where a frame is not background, in [0, 1], for z's encoder: the brightest channel divided by
        SILHOUETTE_LEVEL and capped at 1 (0 on the background, 1 on all but the darkest figure pixels;
        soft and differentiable on decoded frames). Same shape as x (the mask repeated over the channels)."""
        mask = (x.amax(dim=2, keepdim=True) / self.SILHOUETTE_LEVEL).clamp(max=1.0)
        return mask.expand_as(x)

    #: a pixel whose brightest channel differs from the sequence's median by this much is moving
    MOVING_LEVEL = 0.1

    def moving(self, x: torch.Tensor) -> torch.Tensor:
        """What moves, in [0, 1], for z's encoder: the brightest channel of |x_t - median_t x| (the
        sequence's temporal median, per pixel) divided by MOVING_LEVEL and capped at 1. On a still
        background only the moving figure is left, with no colour: nothing is assumed about the
        background or the palette. Same shape as x (the mask repeated over the channels)."""
        median = lower_median(x, dim=1)
        mask = ((x - median).abs().amax(dim=2, keepdim=True) / self.MOVING_LEVEL).clamp(max=1.0)
        return mask.expand_as(x)

    def dynamic_features(self, x: torch.Tensor, feats: torch.Tensor, moving: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame features for q(z): the shared ones, or z's own encoder on reduced frames."""
        cfg = self.config
        if not cfg.z_reduced_view:
            return feats
        if cfg.z_moving:
            g = self.moving(x) if moving is None else moving
        else:
            g = self.silhouette(x) if cfg.z_silhouette else x
        B, T = g.shape[:2]
        g = g.reshape(B * T, *g.shape[2:])
        if cfg.z_input_size and cfg.z_input_size < cfg.frame_size:
            g = F.avg_pool2d(g, cfg.frame_size // cfg.z_input_size)
        return self.dynamic_frame_encoder(g).view(B, T, -1)

    def encode(self, x: torch.Tensor, sample: bool = False, moving: torch.Tensor | None = None) -> Posterior:
        """Posterior of f and z_1:T for a batch of sequences x (B, T, *frame_shape).

        With ``sample=False`` the returned f and z are the posterior means (the full posterior
        is then conditioned on the mean of f); with ``sample=True`` they are reparameterised samples.
        ``moving``: :meth:`moving` of x where the caller has it already (z_moving, f_object_view).
        """
        cfg = self.config
        if moving is None and (cfg.z_moving or cfg.f_object_view):
            moving = self.moving(x)
        feats = self.frame_features(x, moving)
        f_mean, f_logvar = self.encode_static(feats)
        f = reparameterize(f_mean, f_logvar) if sample else f_mean
        z_mean, z_logvar = self.encode_dynamic(self.dynamic_features(x, feats, moving), f)
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
        """Parameters of p(x_t | z_t, f) for every t: logits (Bernoulli), means (Gaussian), or the
        components' weight logits and colours (mixture; see :mod:`models.likelihoods`)."""
        B, T = z.shape[:2]
        h = torch.cat([self.dynamic_states(z), f.unsqueeze(1).expand(-1, T, -1)], dim=-1).reshape(B * T, -1)
        out = self.frame_decoder(h)
        return out.view(B, T, *out.shape[1:])

    def mixture_parts(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A mixture decoder's (B, T, K * (C + 1), H, W) output as the components' weight logits
        (B, T, K, H, W) and colours (B, T, K, C, H, W)."""
        return mixture_parts(params, self.config.likelihood_components, self.config.channels)

    def decode(self, f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x_1:T | z_1:T, f): pixel intensities in [0, 1] or spectrogram values. For the
        mixture likelihood, each pixel's most probable component's colour instead (the mixture's mean
        would blend the colours it keeps apart)."""
        return decoded_frames(self.config, self.decode_params(f, z))

    # ----------------------------------------------------------------------------- priors
    def prior_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced p(z_t | z_<t) for t = 1..T given z_1:T (B, T, z_dim), in one LSTM call.

        The LSTM reads [0, z_1, ..., z_T-1], so its output at t has seen exactly z_<t.
        """
        if self.deterministic:
            raise ValueError(f"a {self.config.dynamics} model has no learned prior over z_1:T; its p(z) is N(0, I)")
        if self.config.prior_components > 1:
            raise ValueError("a mixture prior has no single mean and variance per step; use prior_step_log_density")
        shifted = F.pad(z[:, :-1], (0, 0, 1, 0))
        h, _ = self.prior_lstm(shifted)
        return self.prior_head(h)

    def prior_mixture(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The prior head on LSTM outputs h (..., H): component log-weights (..., K), means and
        log-variances (..., K, z_dim); K = 1 for the Gaussian prior."""
        if self.config.prior_components == 1:
            mean, logvar = self.prior_head(h)
            return mean.new_zeros(*mean.shape[:-1], 1), mean.unsqueeze(-2), logvar.unsqueeze(-2)
        K, D = self.config.prior_components, self.config.z_dim
        out = self.prior_head(h).float()
        logits = out[..., :K].log_softmax(-1)
        mean, logvar = out[..., K:].unflatten(-1, (K, 2 * D)).chunk(2, dim=-1)
        return logits, mean, logvar.clamp(-12.0, 8.0)

    def prior_step_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_t | z_<t) for every t (B, T), teacher-forced on z_1:T."""
        if self.config.prior_components == 1:
            mean, logvar = self.prior_params(z)
            return gaussian_log_density(z, mean, logvar).sum(-1)
        shifted = F.pad(z[:, :-1], (0, 0, 1, 0))
        h, _ = self.prior_lstm(shifted)
        logits, mean, logvar = self.prior_mixture(h)
        return torch.logsumexp(logits + gaussian_log_density(z.unsqueeze(-2), mean, logvar).sum(-1), dim=-1)

    def prior_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z_1:T) = sum_t log p(z_t | z_<t), one value per sequence."""
        return self.prior_step_log_density(z).sum(-1)

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
            logits, mean, logvar = self.prior_mixture(h)  # (B, 1, K), (B, 1, K, D)
            if mean.shape[-2] > 1:  # pick a component per sequence, then draw from it
                u = torch.rand(logits.shape, generator=generator, device=dev)
                k = (logits - torch.log(-torch.log(u.clamp_min(1e-20)))).argmax(-1)  # Gumbel-max
                pick = k[..., None, None].expand(*k.shape, 1, mean.shape[-1])
                mean, logvar = mean.gather(-2, pick), logvar.gather(-2, pick)
            mean, logvar = mean.squeeze(-2), logvar.squeeze(-2)
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
        return reconstruction_nll(self.config, params, x)

    def loss(
        self, x: torch.Tensor, beta_f: float | None = None, beta_z: float | None = None, paired: bool = False,
        groups: torch.Tensor | None = None, hide_z: bool = False,
    ) -> dict:
        """Negative ELBO per sequence (averaged over the batch) and its terms, plus the configured
        terms of :mod:`models.objectives` while training.

        ``paired``: the batch's second half holds, in order, partners of its first half (another
        segment of the same recording); with ``pair_weight > 0`` each sequence is then also scored
        decoded from its own z_1:T and its partner's f, and with ``contrast_weight > 0`` f must pick
        out its partner (see the config). ``groups`` (B,): the recording of each sequence, so that
        two pairs of one recording are not taken for negatives of each other.

        ``hide_z``: the decoder gets zeros in place of z_1:T (also in the pair term; the KL terms are
        as usual, the latent cycle term is left out), so f alone must draw each sequence: the
        static-first phase of training (``--set train.static_first=N``), in which f learns the whole
        look before z is let in, so that a wide frame codec cannot learn the look from z's view first."""
        cfg = self.config
        beta_f = cfg.beta_f if beta_f is None else beta_f
        beta_z = cfg.beta_z if beta_z is None else beta_z
        moving = None
        if (cfg.moving_weight > 0 and self.training) or cfg.z_moving or cfg.f_object_view:
            moving = self.moving(x.detach())  # once for z's encoder and the loss: x is data here
        post = self.encode(x, sample=True, moving=moving)
        z_dec = torch.zeros_like(post.z) if hide_z else post.z  # what the decoder reads for z_1:T
        params = self.decode_params(post.f, z_dec)
        if cfg.moving_weight > 0 and self.training:
            emphasis = moving[:, :, :1]
            recon, moving_recon = (v.mean() for v in reconstruction_nll(cfg, params, x, emphasis))
        else:
            recon, moving_recon = self.reconstruction_nll(params, x).mean(), None
        kl_f = self.kl_f(post.f_mean, post.f_logvar).mean()
        if self.deterministic:  # one z per sequence against p(z) = N(0, I)
            kl_z = kl_normal_standard(post.z_mean[:, 0], post.z_logvar[:, 0]).sum(-1).mean()
        elif cfg.prior_components > 1:  # a one-sample estimate at the posterior's own sample
            log_q = gaussian_log_density(post.z, post.z_mean, post.z_logvar).sum(dim=(1, 2))
            kl_z = (log_q - self.prior_log_density(post.z)).mean()
        else:
            # prior scored on the posterior's own sample z_<t (teacher forcing)
            prior_mean, prior_logvar = self.prior_params(post.z)
            kl_z = kl_normal_normal(post.z_mean, post.z_logvar, prior_mean, prior_logvar).sum(dim=(1, 2)).mean()
        loss = recon + beta_f * kl_f + beta_z * kl_z
        out = {"loss": loss, "recon": recon, "kl_f": kl_f, "kl_z": kl_z, "elbo": -(recon + kl_f + kl_z)}
        if moving_recon is not None:
            out["moving"] = moving_recon
            out["loss"] = out["loss"] + cfg.moving_weight * moving_recon
        if cfg.pair_weight > 0 and self.training and paired:
            out["pair"] = objectives.pair_loss(self, post, x, z_dec)
            out["loss"] = out["loss"] + cfg.pair_weight * out["pair"]
        if cfg.contrast_weight > 0 and self.training and paired:
            out["contrast"] = objectives.contrast_loss(post.f_mean, groups)
            out["loss"] = out["loss"] + cfg.contrast_weight * out["contrast"]
        if cfg.f_mmd_weight > 0 and self.training and x.shape[0] > 1:
            out["mmd_f"] = objectives.mmd_standard(post.f)
            out["loss"] = out["loss"] + cfg.f_mmd_weight * out["mmd_f"]
        if cfg.cycle_weight > 0 and self.training and x.shape[0] > 1 and not hide_z:
            out["cycle"] = objectives.cycle_loss(self, post)
            out["loss"] = out["loss"] + cfg.cycle_weight * out["cycle"]
        return out

    def forward(
        self, x: torch.Tensor, beta_f: float | None = None, beta_z: float | None = None, paired: bool = False,
        groups: torch.Tensor | None = None, hide_z: bool = False,
    ) -> dict:
        # the loss is the forward pass, so DistributedDataParallel and torch.compile can wrap the model
        return self.loss(x, beta_f=beta_f, beta_z=beta_z, paired=paired, groups=groups, hide_z=hide_z)
