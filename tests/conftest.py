"""Shared fixtures: tiny model configs that run in milliseconds, and synthetic animations."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models import DSAE, DSAEConfig  # noqa: E402

TINY = dict(frame_size=16, seq_len=4, f_dim=6, z_dim=3, hidden_dim=16, feature_dim=16, conv_width=4)


def tiny_model(**overrides) -> DSAE:
    torch.manual_seed(0)
    return DSAE(DSAEConfig(**{**TINY, **overrides}))


def moving_squares(n: int, T: int = 4, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (n, T, size, size, 3): a coloured square (the content) moving along a line (the motion)."""
    rng = np.random.RandomState(seed)
    out = np.zeros((n, T, size, size, 3), np.uint8)
    for i in range(n):
        colour = rng.randint(60, 256, 3)
        x0, y0 = rng.randint(0, size - 5, 2)
        dx, dy = rng.choice([-1, 0, 1], 2)
        for t in range(T):
            x = int(np.clip(x0 + dx * t, 0, size - 4))
            y = int(np.clip(y0 + dy * t, 0, size - 4))
            out[i, t, y : y + 4, x : x + 4] = colour
    return out


@pytest.fixture
def tiny():
    return tiny_model()


@pytest.fixture(scope="session")
def sprite_gifs(tmp_path_factory):
    """Real Sprites sequences of three test characters x nine motions as GIFs, named
    ``seqNN_c{char_id}_a{action}.gif``."""
    from dsae_cli.io import media
    from dsae_cli.data import sprites as sp

    folder = tmp_path_factory.mktemp("gifs")
    ids = [sp.character_id(0, 1, 2, 3), sp.character_id(4, 5, 0, 1), sp.character_id(2, 3, 4, 5)]
    data = sp.build_characters(ids)
    for i, x in enumerate(data["x"]):
        media.write_gif(folder / f"seq{i:02d}_c{data['char_id'][i]}_a{data['action'][i]}.gif", x)
    return folder


def voice(
    f0: float, tract: float, seconds: float = 1.0, sr: int = 16000, seed: int = 0, amp: float = 0.3, tremolo: bool = True
) -> np.ndarray:
    """A synthetic voice: harmonics of a vibrato pitch f0 shaped by two formants (scaled by the
    speaker's tract length) that jump between five vowels every 150 ms, plus a little noise; with
    ``tremolo`` the level also swells and fades three times a second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    vowels = np.array([[700, 1200], [300, 2300], [500, 900], [400, 1900], [600, 1700]], float) * tract
    seq = rng.integers(0, len(vowels), int(seconds / 0.15) + 2)
    formants = vowels[seq[np.minimum((t / 0.15).astype(int), len(seq) - 1)]]
    pitch = f0 * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    y = np.zeros(n)
    for h in range(1, int(min(4000, sr / 2 - 200) / f0)):
        fh = h * pitch
        gain = np.exp(-(((fh - formants[:, 0]) / 150) ** 2)) + 0.6 * np.exp(-(((fh - formants[:, 1]) / 200) ** 2)) + 0.05
        y += gain * np.sin(h * phase) / np.sqrt(h)
    if tremolo:
        y *= 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2
    return (amp * y / np.abs(y).max() + 0.002 * rng.standard_normal(n)).astype(np.float32)
