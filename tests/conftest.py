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
