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
