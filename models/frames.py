"""Pluggable per-frame encoders and decoders.

A frame encoder maps a batch of frames (N, *frame_shape) to features (N, feature_dim); a frame
decoder maps (N, in_dim) to the parameters of p(x_t | z_t, f) with the frame's shape (logits for
a Bernoulli likelihood, means for a Gaussian, weight logits and colours for a mixture). The DSAE folds time into the batch axis, so these
modules see N = batch * T frames in one call.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


# The codec's CPU shortcuts (below): same outputs and gradients as torch's own layers, faster on a CPU.
# ``benchmarks/train_throughput.py --plain-convs`` turns them off to time what they save.
CPU_SHORTCUTS = True


class _StridedConvFn(torch.autograd.Function):
    """A 4x4, stride-2, padding-1 convolution (or transposed convolution) whose backward pass sums the
    output gradient for the bias itself. The result is torch's own layer's, gradients included; the
    difference is speed: asked for the bias gradient as well, oneDNN's backward pass on a CPU is
    markedly slower, and a plain sum over the gradient costs little."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, transposed: bool) -> torch.Tensor:
        if torch.is_autocast_enabled("cpu"):  # cast as autocast would, and keep what the backward pass needs
            dtype = torch.get_autocast_dtype("cpu")
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        ctx.save_for_backward(x, weight)
        ctx.transposed = transposed
        conv = F.conv_transpose2d if transposed else F.conv2d
        with torch.autocast("cpu", enabled=False):
            return conv(x, weight, bias, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [2, 2], [1, 1], [1, 1], ctx.transposed, [0, 0], 1, [need_x, need_w, False]
            )
        if need_b:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def _strided_conv(layer: nn.Module, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
    """``layer`` (a 4x4 stride-2 padding-1 Conv2d or ConvTranspose2d) applied to ``x``; with
    ``bias=False`` without its bias (the caller adds it). While gradients are recorded it runs through
    :class:`_StridedConvFn`; otherwise (inference, export) torch's own call."""
    b = layer.bias if bias else None
    transposed = isinstance(layer, nn.ConvTranspose2d)
    if CPU_SHORTCUTS and x.device.type == "cpu" and torch.is_grad_enabled() and not torch.jit.is_tracing():
        return _StridedConvFn.apply(x, layer.weight, b, transposed)
    conv = F.conv_transpose2d if transposed else F.conv2d
    return conv(x, layer.weight, b, stride=2, padding=1)


class _AddBiasNCHW(torch.autograd.Function):
    """``x`` (N, C, H, W) in any memory layout plus a per-frame bias (N, C, 1, 1), written in one pass
    to a contiguous (NCHW) result: the decoder's channels-last output is added to and converted at once
    (add, then ``.contiguous()``, read and wrote the frames twice)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out = torch.empty(x.shape, dtype=torch.result_type(x, bias), device=x.device)
        return torch.add(x, bias, out=out)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, grad.sum((2, 3), keepdim=True)


def _add_bias_nchw(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``(x + bias).contiguous()``, in one pass while gradients are recorded (:class:`_AddBiasNCHW`)."""
    if torch.is_grad_enabled() and not torch.jit.is_tracing():
        return _AddBiasNCHW.apply(x, bias.expand(x.shape[0], -1, 1, 1))
    return (x + bias).contiguous()


class ConvFrameEncoder(nn.Module):
    """Four 4x4 stride-2 convolutions (size/16 pixels left), then a linear layer to the feature."""

    def __init__(self, channels: int, frame_size: int, width: int, feature_dim: int):
        super().__init__()
        w = width
        self.conv = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), _act(),
            nn.Conv2d(w, 2 * w, 4, 2, 1), _act(),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), _act(),
            nn.Conv2d(4 * w, 8 * w, 4, 2, 1), _act(),
        )  # fmt: skip
        side = frame_size // 16
        # LayerNorm keeps the features at unit scale: unbounded conv features saturate the gates of
        # the LSTMs that read them, which then pass no gradient back (f becomes a constant)
        self.fc = nn.Sequential(nn.Linear(8 * w * side * side, feature_dim), nn.LayerNorm(feature_dim), _act())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # channels-last lets oneDNN pick its fast convolution kernels on CPU
        h = frames.contiguous(memory_format=torch.channels_last)
        for layer in self.conv:
            h = _strided_conv(layer, h) if isinstance(layer, nn.Conv2d) else layer(h)
        return self.fc(h.flatten(1))


class ConvFrameDecoder(nn.Module):
    """The mirror of :class:`ConvFrameEncoder`: linear to a size/16 grid, four transposed convs.

    With ``film_dim > 0`` the last ``film_dim`` inputs (f) do not enter the linear layer; they scale
    and shift the channels of every layer instead (FiLM, Perez et al. 2018), and add a per-channel
    bias to the output, so the spatial layout comes from z_t alone and f acts as a per-sequence
    style: colours and which shapes to draw.
    """

    def __init__(self, in_dim: int, channels: int, frame_size: int, width: int, film_dim: int = 0, film_layout: bool = False):
        super().__init__()
        w = width
        self.side = frame_size // 16
        self.width = w
        self.film_dim = film_dim
        self.film_layout = film_layout  # f also enters the linear layer: it may lay out a pattern, not only style it
        self.channels = channels
        self.fc = nn.Sequential(nn.Linear(in_dim - (0 if film_layout else film_dim), 8 * w * self.side * self.side), _act())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(w, channels, 4, 2, 1),
        )  # fmt: skip
        if film_dim:
            self.film_channels = [8 * w, 4 * w, 2 * w, w]
            self.film = nn.Linear(film_dim, 2 * sum(self.film_channels) + channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        layers = list(self.deconv)
        last = layers[6]
        # the last layer's bias is added with the conversion to NCHW (and f's colour bias), in one pass
        fold_last_bias = CPU_SHORTCUTS
        if not self.film_dim:
            g = self.fc(h).view(-1, 8 * self.width, self.side, self.side)
            g = g.contiguous(memory_format=torch.channels_last)
            for k in range(3):
                g = layers[2 * k + 1](_strided_conv(layers[2 * k], g))
            g = _strided_conv(last, g, bias=not fold_last_bias)
            if fold_last_bias:
                return _add_bias_nchw(g, last.bias.view(1, -1, 1, 1))
            return g.contiguous()
        content, style = h[:, : -self.film_dim], h[:, -self.film_dim :]
        params = self.film(style)
        g = self.fc(h if self.film_layout else content).view(-1, 8 * self.width, self.side, self.side)
        g = g.contiguous(memory_format=torch.channels_last)
        i = 0
        for k, c in enumerate(self.film_channels):
            gamma = params[:, i : i + c, None, None]
            beta = params[:, i + c : i + 2 * c, None, None]
            i += 2 * c
            g = g * (1 + gamma) + beta
            if k < 3:
                g = layers[2 * k + 1](_strided_conv(layers[2 * k], g))
            else:
                g = _strided_conv(last, g, bias=not fold_last_bias)
        bias = params[:, i : i + self.channels, None, None]
        if fold_last_bias:
            return _add_bias_nchw(g, bias + last.bias.view(1, -1, 1, 1))
        return (g + bias).contiguous()


def scaled_grid(scale: float, centre: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The sampling grid of ``F.affine_grid`` (align_corners False) for a scale and a shift: output pixel
    p samples the input at ``scale * p + centre`` (both in [-1, 1] coordinates). ``centre`` (N, 2) is
    (x, y); returns (N, height, width, 2). Written out in plain ops, so ONNX opset 17 exports it."""
    ys = (torch.arange(height, device=centre.device, dtype=centre.dtype) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=centre.device, dtype=centre.dtype) * 2 + 1) / width - 1
    gx = xs.view(1, 1, width) * scale + centre[:, 0].view(-1, 1, 1)
    gy = ys.view(1, height, 1) * scale + centre[:, 1].view(-1, 1, 1)
    return torch.stack([gx.expand(-1, height, width), gy.expand(-1, height, width)], dim=-1)


class ObjectFrameDecoder(nn.Module):
    """A figure drawn in its own frame and placed over a background (video, ``decoder_object``).

    From [z_t, f], one :class:`ConvFrameDecoder` (f laying it out and styling it, as ``decoder_f_layout``)
    draws the background, which may move with the camera, and a second one draws the figure on its own
    canvas, with an opacity map; and a linear head on [z_t, f] gives where the canvas's centre lies in the frame. The
    canvas, of half-width ``scale`` (a share of the frame's) and with as many pixels as the part of the
    frame it covers, is warped into the frame (bilinear, nothing outside it) and laid over the background
    by its opacity. A figure stands still on its canvas, so its outline is learnt once for every position
    the motion takes it to.

    Reads (N, d + f_dim) like the other decoders. With ``figure_dim`` > 0, f's first ``figure_dim`` values
    reach only the figure's canvas and the rest only the background; the placement reads all of [z_t, f].
    """

    def __init__(self, in_dim: int, channels: int, frame_size: int, width: int, film_dim: int, scale: float, figure_dim: int = 0):
        super().__init__()
        self.channels = channels
        self.scale = scale
        self.dynamic_dim = in_dim - film_dim
        self.figure_dim = figure_dim
        fig_f, bg_f = (figure_dim, film_dim - figure_dim) if figure_dim else (film_dim, film_dim)
        d = self.dynamic_dim
        self.background = ConvFrameDecoder(d + bg_f, channels, frame_size, width, film_dim=bg_f, film_layout=True)
        # the canvas has as many pixels as the part of the frame it covers (at least 16)
        self.canvas_size = max(16, 16 * round(frame_size * scale / 16))
        self.figure = ConvFrameDecoder(d + fig_f, channels + 1, self.canvas_size, width, film_dim=fig_f, film_layout=True)
        self.place = nn.Linear(in_dim, 2)  # the canvas's centre (x, y), in [-1, 1]
        nn.init.zeros_(self.place.weight)
        nn.init.zeros_(self.place.bias)

    def placement(self, h: torch.Tensor) -> torch.Tensor:
        """Where each frame's canvas lies: its centre (N, 2) in the frame's [-1, 1] coordinates."""
        return torch.tanh(self.place(h))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.figure_dim:
            d, k = self.dynamic_dim, self.dynamic_dim + self.figure_dim
            bg = self.background(torch.cat([h[:, :d], h[:, k:]], dim=1))
            canvas = self.figure(h[:, :k])
        else:
            bg = self.background(h)
            canvas = self.figure(h)
        centre = self.placement(h).to(canvas.dtype)
        # frame point p shows canvas point (p - centre) / scale
        grid = scaled_grid(1.0 / self.scale, -centre / self.scale, bg.shape[2], bg.shape[3])
        # split rather than sliced, and lerp rather than bg + alpha * (colour - bg): the same values in fewer
        # passes over the frames, forward and backward (what a CPU step spends most of its time on)
        colour, opacity = canvas.split([self.channels, 1], dim=1)
        layer = torch.cat([colour, torch.sigmoid(opacity)], dim=1)
        placed = F.grid_sample(layer, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        dtype = torch.promote_types(bg.dtype, placed.dtype)
        colour, alpha = placed.to(dtype).split([self.channels, 1], dim=1)
        return torch.lerp(bg.to(dtype), colour, alpha)


class SpectrogramFrameEncoder(nn.Module):
    """Two-layer MLP over one spectrogram frame (n_bins log magnitudes)."""

    def __init__(self, n_bins: int, hidden_dim: int, feature_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_bins, hidden_dim), _act(), nn.Linear(hidden_dim, feature_dim), _act())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.net(frames)


class SpectrogramFrameDecoder(nn.Module):
    """Two hidden layers to the mean log magnitude of every bin."""

    def __init__(self, in_dim: int, hidden_dim: int, n_bins: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), _act(), nn.Linear(hidden_dim, hidden_dim), _act(), nn.Linear(hidden_dim, n_bins)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def decoder_out_channels(cfg) -> int:
    """Maps a video frame decoder draws: the colour channels, or for the mixture likelihood each
    component's colour and its weight's logit."""
    if getattr(cfg, "likelihood", "") == "mixture":
        return cfg.likelihood_components * (cfg.channels + 1)
    return cfg.channels


def build_frame_codec(cfg, dynamic_dim: int | None = None) -> tuple[nn.Module, nn.Module]:
    """The (encoder, decoder) pair for a config's modality; the decoder reads [dynamic_dim values, f]
    per frame (default z_dim: z_t itself)."""
    d = cfg.z_dim if dynamic_dim is None else dynamic_dim
    if cfg.modality == "video":
        enc = ConvFrameEncoder(cfg.channels, cfg.frame_size, cfg.conv_width, cfg.feature_dim)
        if getattr(cfg, "decoder_object", False):
            dec = ObjectFrameDecoder(
                cfg.f_dim + d, cfg.channels, cfg.frame_size, cfg.conv_width, cfg.f_dim, cfg.object_scale, getattr(cfg, "f_figure_dim", 0)
            )
            return enc, dec
        film = cfg.f_dim if getattr(cfg, "decoder_film", False) else 0
        layout = bool(film and getattr(cfg, "decoder_f_layout", False))
        dec = ConvFrameDecoder(cfg.f_dim + d, decoder_out_channels(cfg), cfg.frame_size, cfg.conv_width, film_dim=film, film_layout=layout)
    else:
        enc = SpectrogramFrameEncoder(cfg.n_bins, cfg.hidden_dim, cfg.feature_dim)
        dec = SpectrogramFrameDecoder(cfg.f_dim + d, cfg.hidden_dim, cfg.n_bins)
    return enc, dec
