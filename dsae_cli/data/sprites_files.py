"""The built Sprites set as files: the compressed ``.npz`` of ``dsae data sprites`` (written and
validated here) and one looping GIF per sequence with a ``labels.csv``. The arrays are those of
:func:`dsae_cli.data.sprites.build_sprites`."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dsae_cli.data.sprites import (
    ACTION_NAMES, ATTRIBUTE_NAMES, CELL, DATA_KEYS, FRAMES, LABEL_KEYS, N_MOTIONS, REBUILD_HINT, VARIANTS, character_attributes,
)  # fmt: skip
from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path, write_csv




def write_sprites_npz(path: str | Path, data: dict) -> Path:
    """Write ``data`` (as built by :func:`~dsae_cli.data.sprites.build_sprites`) to a compressed ``.npz``, atomically."""
    path = Path(path)
    arrays = {key: np.asarray(data[key]) for key in DATA_KEYS}
    with atomic_path(path) as tmp:
        # Writing to an open file stops numpy from appending ".npz" to a name that lacks it.
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


def load_sprites_npz(path: str | Path) -> dict:
    """Read and validate a Sprites ``.npz``; raise :class:`DsaeError` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise DsaeError(f"Sprites file {path} not found; build it with `dsae data sprites -o {path}`")
    hint = REBUILD_HINT.replace("FILE.npz", str(path)) if path.suffix == ".npz" else REBUILD_HINT
    try:
        npz = np.load(path, allow_pickle=False)  # no pickle: reading a data file never runs code
    except Exception as err:  # noqa: BLE001 - any read failure means the same thing to the user
        raise DsaeError(f"cannot read {path} as a Sprites .npz ({type(err).__name__}: {err}); {hint}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):  # a plain array: a .npy file
        raise DsaeError(f"{path} is a single array, not a Sprites .npz; {hint}")
    try:
        with npz:
            missing = [key for key in DATA_KEYS if key not in npz.files]
            if missing:
                raise DsaeError(f"{path} is not a Sprites file (missing {', '.join(missing)}); {hint}")
            data = {key: npz[key] for key in DATA_KEYS}
    except DsaeError:
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or corrupt member
        raise DsaeError(f"cannot read {path} as a Sprites .npz ({type(err).__name__}: {err}); {hint}") from None

    x = data["x"]
    if x.dtype != np.uint8 or x.ndim != 5 or x.shape[1:] != (FRAMES, CELL, CELL, 3) or len(x) == 0:
        raise DsaeError(
            f"{path}: x must be uint8 of shape (N, {FRAMES}, {CELL}, {CELL}, 3), got {x.dtype} {x.shape}; {hint}"
        )
    n = len(x)
    for key in LABEL_KEYS:
        arr = data[key]
        if not np.issubdtype(arr.dtype, np.integer) or arr.shape != (n,):
            raise DsaeError(f"{path}: {key} must be integers of shape ({n},), got {arr.dtype} {arr.shape}; {hint}")
    for key in ATTRIBUTE_NAMES:
        if data[key].min() < 0 or data[key].max() >= VARIANTS:
            raise DsaeError(f"{path}: {key} labels must be in 0..{VARIANTS - 1}; {hint}")
    if data["action"].min() < 0 or data["action"].max() >= N_MOTIONS:
        raise DsaeError(f"{path}: action labels must be in 0..{N_MOTIONS - 1}; {hint}")
    expected_ids = 216 * data["skin"] + 36 * data["pants"] + 6 * data["top"] + data["hair"]
    if not np.array_equal(expected_ids, data["char_id"]):
        raise DsaeError(f"{path}: char_id does not match the skin/pants/top/hair labels; {hint}")
    split = data["split"]
    if split.dtype.kind != "U" or split.shape != (n,) or not np.isin(split, ("train", "test")).all():
        raise DsaeError(f"{path}: split must be strings 'train'/'test' of shape ({n},); {hint}")
    return data


def sequence_gif_name(char_id: int, action: int) -> str:
    """File name of one sequence's GIF, e.g. ``0005_skin0_pants0_top0_hair5_walk-front.gif``."""
    skin, pants, top, hair = character_attributes(char_id)
    return f"{int(char_id):04d}_skin{skin}_pants{pants}_top{top}_hair{hair}_{ACTION_NAMES[int(action)]}.gif"


def write_sprites_gifs(directory: str | Path, data: dict, progress: Optional[Callable[[int], None]] = None) -> Path:
    """Write every sequence as a looping GIF (8 frames, 125 ms each) plus ``labels.csv``.

    Layout: ``DIR/train/<name>.gif`` and ``DIR/test/<name>.gif`` (see :func:`sequence_gif_name`),
    and ``DIR/labels.csv`` with one row per GIF (file relative to DIR, char_id, split, skin,
    pants, top, hair, action, action_name). Frames have well under 256 colours, so the GIF
    palette is lossless. Pillow merges identical consecutive frames of a GIF into one longer
    frame; no Sprites sequence has any (every motion shows a different drawing at each step).
    GIF stores frame delays in hundredths of a second and Pillow truncates, so the 125 ms asked
    for is written as 12 cs (120 ms per frame, about 8.3 fps).
    ``progress(1)`` is called after each GIF. Returns the path of ``labels.csv``.
    """
    import imageio.v3 as iio

    directory = Path(directory)
    x = data["x"]
    rows = []
    for split in ("train", "test"):
        (directory / split).mkdir(parents=True, exist_ok=True)
    for i in range(len(x)):
        char_id, action, split = int(data["char_id"][i]), int(data["action"][i]), str(data["split"][i])
        relpath = f"{split}/{sequence_gif_name(char_id, action)}"
        iio.imwrite(directory / relpath, x[i], extension=".gif", duration=125, loop=0)
        rows.append(
            [relpath, char_id, split, *(int(data[k][i]) for k in ATTRIBUTE_NAMES), action, ACTION_NAMES[action]]
        )
        if progress is not None:
            progress(1)

    return write_csv(directory / "labels.csv", ["file", "char_id", "split", *ATTRIBUTE_NAMES, "action", "action_name"], rows)
