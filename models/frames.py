"""Pluggable per-frame encoders and decoders.

A frame encoder maps a batch of frames (N, *frame_shape) to features (N, feature_dim); a frame
decoder maps (N, in_dim) to the parameters of p(x_t | z_t, f) with the frame's shape (logits for
a Bernoulli likelihood, means for a Gaussian). The DSAE folds time into the batch axis, so these
modules see N = batch * T frames in one call.
"""

from __future__ import annotations

import torch
from torch import nn


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


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
        self.fc = nn.Sequential(nn.Linear(8 * w * side * side, feature_dim), _act())

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # channels-last lets oneDNN pick its fast convolution kernels on CPU
        h = self.conv(frames.contiguous(memory_format=torch.channels_last))
        return self.fc(h.flatten(1))


class ConvFrameDecoder(nn.Module):
    """The mirror of :class:`ConvFrameEncoder`: linear to a size/16 grid, four transposed convs."""

    def __init__(self, in_dim: int, channels: int, frame_size: int, width: int):
        super().__init__()
        w = width
        self.side = frame_size // 16
        self.width = w
        self.fc = nn.Sequential(nn.Linear(in_dim, 8 * w * self.side * self.side), _act())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(8 * w, 4 * w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), _act(),
            nn.ConvTranspose2d(w, channels, 4, 2, 1),
        )  # fmt: skip

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        g = self.fc(h).view(-1, 8 * self.width, self.side, self.side)
        g = g.contiguous(memory_format=torch.channels_last)
        return self.deconv(g).contiguous()


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


def build_frame_codec(cfg) -> tuple[nn.Module, nn.Module]:
    """The (encoder, decoder) pair for a config's modality."""
    if cfg.modality == "video":
        enc = ConvFrameEncoder(cfg.channels, cfg.frame_size, cfg.conv_width, cfg.feature_dim)
        dec = ConvFrameDecoder(cfg.f_dim + cfg.z_dim, cfg.channels, cfg.frame_size, cfg.conv_width)
    else:
        enc = SpectrogramFrameEncoder(cfg.n_bins, cfg.hidden_dim, cfg.feature_dim)
        dec = SpectrogramFrameDecoder(cfg.f_dim + cfg.z_dim, cfg.hidden_dim, cfg.n_bins)
    return enc, dec
