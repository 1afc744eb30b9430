"""The judge: a supervised sequence classifier that scores generated videos, as S3VAE / C-DSVAE do.

It reads a whole sequence x_1:T (B, T, 3, H, W) with values in [0, 1] and predicts the labels of a
benchmark at once: one motion head, ``action`` (``n_actions`` classes), and one head per content
attribute named in ``attributes`` (``n_variants`` classes each). The defaults are Sprites': the
action (9 classes: 3 motions x 3 directions) and skin, pants, top and hair (6 variants each); the
Moving shapes judge has ``attributes=("shape", "colour", "background")`` and ``n_actions=8``
(:data:`BENCHMARK_HEADS`). Design (the protocol of the released S3VAE/C-DSVAE code, see
``/work/shared/data/lpc/README.md`` section 8):

  per frame    four 4x4 stride-2 convs (w, 2w, 4w, 8w channels), each + BatchNorm + LeakyReLU(0.2)
               (64 -> 32 -> 16 -> 8 -> 4 pixels), then a 4x4 valid conv to ``embed_dim`` + BN + tanh;
               with ``pooled`` (Moving shapes) also the last block's features max-pooled over the
               frame, a 1x1 conv to ``embed_dim`` + BN + tanh, so a small figure's shape is read
               wherever it is
  over time    a one-layer bidirectional LSTM; the sequence feature is the forward state at the
               last frame and the backward state at the first frame
  heads        one per label: Linear(2H -> head_hidden) - ReLU - Linear(head_hidden -> K)

The protocol's widths (w = 64, LSTM 256, heads 256) are the ``"protocol"`` preset: about 16x the
convolution work of the ``"small"`` default (w = 16, LSTM 64, heads 64). The small widths are enough
here, since the labels are colours, shapes and poses of rendered figures; on Sprites skin, whose
tones are close, is the last head to be learned. The default 5 epochs (25 on Moving shapes, whose
shape head is learned late) with a cosine learning-rate decay aim at >= 99 % on every head, and ``dsae judge train`` reports each head's test accuracy and
warns when one is below 99 %.

The LSTM reads sequences of any length, so the judge also scores prefixes x_1..t (used for the
probability-over-time plots of ``dsae evaluate sprites --plots``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.config import config_from_dict

# Sprites' heads (the default config's), in the fixed order of every judge: the action first, then
# the content (appearance) attributes
HEADS = ("action", "skin", "pants", "top", "hair")
ATTRIBUTES = HEADS[1:]
#: the config fields that give each benchmark's heads
BENCHMARK_HEADS: dict[str, dict] = {
    "sprites": dict(attributes=ATTRIBUTES, n_actions=9, n_variants=6),
    "shapes": dict(attributes=("shape", "colour", "background"), n_actions=8, n_variants=6, pooled=True),
}


@dataclass
class JudgeConfig:
    frame_size: int = 64  # frames are frame_size x frame_size (a multiple of 16)
    channels: int = 3  # colour channels per frame
    conv_width: int = 16  # channels of the first conv layer; doubles per layer, 4 layers (protocol: 64)
    embed_dim: int = 128  # per-frame vector from the final valid conv, BN and tanh (protocol: 128)
    lstm_hidden: int = 64  # hidden size of each direction of the bidirectional LSTM (protocol: 256)
    head_hidden: int = 64  # hidden layer of each classification head (protocol: 256)
    n_actions: int = 9  # classes of the action head (Sprites: 3 motions x 3 directions)
    n_variants: int = 6  # classes of each content head (Sprites: skin, pants, top, hair)
    attributes: tuple[str, ...] = ATTRIBUTES  # the content heads, after the action (Sprites' by default)
    pooled: bool = False  # each frame's vector also holds the conv features max-pooled over the frame, so a
    #   small figure is told apart wherever it is (Moving shapes); Sprites' figures stay in the centre

    def __post_init__(self) -> None:
        if self.frame_size % 16 or self.frame_size < 16:
            raise ValueError(f"frame_size must be a multiple of 16, not {self.frame_size}")
        for f in dataclasses.fields(self):
            if f.name not in ("attributes", "pooled") and int(getattr(self, f.name)) < 1:
                raise ValueError(f"{f.name} must be positive")
        if isinstance(self.attributes, str) or not all(isinstance(a, str) and a for a in self.attributes):
            raise ValueError(f"attributes must be a list of head names, not {self.attributes!r}")
        self.attributes = tuple(self.attributes)  # a saved config holds a JSON list
        if not self.attributes or len(set(self.attributes)) != len(self.attributes) or "action" in self.attributes:
            raise ValueError(f"attributes must be distinct names other than 'action', at least one, not {list(self.attributes)}")

    @property
    def heads(self) -> tuple[str, ...]:
        """The names of the heads, in order: ``action``, then the content attributes."""
        return ("action", *self.attributes)

    @property
    def classes(self) -> dict[str, int]:
        """Number of classes of every head, in :attr:`heads` order."""
        return {name: (self.n_actions if name == "action" else self.n_variants) for name in self.heads}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["attributes"] = list(self.attributes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "JudgeConfig":
        return config_from_dict(cls, d, "judge config fields")


# Named presets (overrides of the defaults above).
JUDGE_PRESETS: dict[str, dict] = {
    # a quarter of the protocol's widths (see the module docstring)
    "small": dict(conv_width=16, embed_dim=128, lstm_hidden=64, head_hidden=64),
    # the S3VAE / C-DSVAE judge's sizes (64-128-256-512 convs, 128-d frames, BiLSTM 256, heads 256)
    "protocol": dict(conv_width=64, embed_dim=128, lstm_hidden=256, head_hidden=256),
}


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]


class Judge(nn.Module):
    def __init__(self, config: JudgeConfig):
        super().__init__()
        self.config = cfg = config
        w = cfg.conv_width
        side = cfg.frame_size // 16
        self.frame_encoder = nn.Sequential(
            *_block(cfg.channels, w), *_block(w, 2 * w), *_block(2 * w, 4 * w), *_block(4 * w, 8 * w),
            nn.Conv2d(8 * w, cfg.embed_dim, side, 1, 0, bias=False), nn.BatchNorm2d(cfg.embed_dim), nn.Tanh(),
        )  # fmt: skip
        if cfg.pooled:  # the last conv block's features, max-pooled over the frame, to a second vector
            self.pool = nn.Sequential(
                nn.AdaptiveMaxPool2d(1), nn.Conv2d(8 * w, cfg.embed_dim, 1, bias=False), nn.BatchNorm2d(cfg.embed_dim), nn.Tanh()
            )  # fmt: skip
        self.lstm = nn.LSTM(cfg.embed_dim * (2 if cfg.pooled else 1), cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.heads = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(2 * cfg.lstm_hidden, cfg.head_hidden), nn.ReLU(inplace=True), nn.Linear(cfg.head_hidden, k))
                for name, k in cfg.classes.items()
            }
        )

    def sequence_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) in [0, 1] -> (B, 2 * lstm_hidden): all frames in one conv call, then the BiLSTM."""
        B, T = x.shape[:2]
        frames = x.reshape(B * T, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
        if self.config.pooled:
            conv = self.frame_encoder[:-3](frames)
            h = torch.cat([self.frame_encoder[-3:](conv), self.pool(conv)], dim=1).view(B, T, -1)
        else:
            h = self.frame_encoder(frames).view(B, T, -1)
        out, _ = self.lstm(h)
        H = self.config.lstm_hidden
        return torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=-1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits of every head, ``{name: (B, K)}``."""
        h = self.sequence_features(x)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax class probabilities of every head, ``{name: (B, K)}``."""
        return {name: logits.softmax(-1) for name, logits in self(x).items()}

    def loss(self, x: torch.Tensor, labels: dict[str, torch.Tensor]) -> dict:
        """Sum of the heads' cross-entropies (the protocol's loss, up to a constant factor) and per-head accuracy."""
        logits = self(x)
        out = {}
        total = 0.0
        for name, lg in logits.items():
            ce = F.cross_entropy(lg, labels[name])
            total = total + ce
            out[f"acc_{name}"] = (lg.argmax(-1) == labels[name]).float().mean()
        out["loss"] = total
        return out
