"""The "Moving shapes" video benchmark: coloured figures moving over coloured, textured backgrounds.

A second benchmark with known factors, next to Sprites, that assumes nothing Sprites does (no
black background, no palette, a figure that covers about a tenth of the frame):

* content (the static factors, 216 combinations):
  ``shape`` (6: circle, square, triangle, diamond, cross, ring), ``colour`` of the figure (6 hues,
  jittered per sequence) and ``background`` (6 textured backgrounds: each its own colours and
  pattern, at a random phase per sequence);
* motion (the dynamic factor): ``action`` = the direction the figure moves in (8: east, north-east,
  north, ..., south-east), at a per-sequence speed, from a random start that keeps it in frame.

``content_id = 36 * shape + 6 * colour + background``. The train/test split is by content (173 /
43 contents, seeded), as Sprites' is by character; ``val`` is the share of the training contents
that ``dsae train`` holds out (:func:`dsae_cli.data.sequences.held_out_groups`). Every content is
drawn in every direction ``REPEATS`` times (6912 sequences of 8 frames in all).

Rendering is pure numpy and deterministic (a seed per sequence): the figure's mask is drawn at
4x4 supersampling, so its edge is anti-aliased. ``dsae data shapes`` writes the set as .npz and
GIFs; ``--data shapes`` and ``dsae evaluate shapes`` render it on the fly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from dsae_cli.errors import DsaeError

SIZE = 64  # frames are SIZE x SIZE
FRAMES = 8  # frames per sequence by default
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
COLOURS = ("red", "yellow", "green", "cyan", "blue", "magenta")
BACKGROUNDS = ("slate", "sand stripes", "green checks", "grey gradient", "violet diagonals", "brown noise")
DIRECTIONS = ("east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east")
ATTRIBUTE_NAMES = ("shape", "colour", "background")
VARIANTS = 6
N_CONTENTS = VARIANTS**3  # 216
N_TEST_CONTENTS = 43
REPEATS = 4  # sequences per content and direction
SPLIT_SEED = 2027
LABEL_KEYS = ("shape", "colour", "background", "action", "content_id")

# figure colours (RGB in [0, 1]): saturated hues, each jittered by up to JITTER per channel
FIGURE_RGB = np.array(
    [[0.92, 0.16, 0.14], [0.97, 0.86, 0.15], [0.20, 0.80, 0.25], [0.15, 0.85, 0.90], [0.20, 0.35, 0.95], [0.90, 0.25, 0.85]]
)
JITTER = 0.05
# background colour pairs (pattern colour a, pattern colour b)
BACKGROUND_RGB = np.array(
    [
        [[0.25, 0.30, 0.38], [0.25, 0.30, 0.38]],  # slate, plain
        [[0.80, 0.72, 0.55], [0.66, 0.58, 0.42]],  # sand, horizontal stripes
        [[0.22, 0.40, 0.24], [0.33, 0.52, 0.30]],  # green, checks
        [[0.35, 0.35, 0.35], [0.78, 0.78, 0.78]],  # grey, vertical gradient
        [[0.42, 0.28, 0.55], [0.55, 0.40, 0.66]],  # violet, diagonal stripes
        [[0.45, 0.30, 0.18], [0.62, 0.46, 0.30]],  # brown, smooth noise
    ]
)
RADIUS = (10.0, 12.5)  # the figure's radius in pixels, per sequence
TRAVEL = (18.0, 26.0)  # how far the figure moves over a sequence, in pixels (speed = travel / (T - 1))
SUPER = 4  # supersampling of the figure's mask


def content_id(shape: int, colour: int, background: int) -> int:
    return 36 * int(shape) + 6 * int(colour) + int(background)


def content_attributes(cid: int) -> tuple[int, int, int]:
    cid = int(cid)
    return cid // 36, (cid // 6) % 6, cid % 6


def split_content_ids() -> tuple[np.ndarray, np.ndarray]:
    """(train ids, test ids), sorted: a seeded permutation of the 216 contents, the last 43 for test."""
    perm = np.random.RandomState(SPLIT_SEED).permutation(N_CONTENTS)
    return np.sort(perm[:-N_TEST_CONTENTS]), np.sort(perm[-N_TEST_CONTENTS:])


def _shape_mask(shape: int, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Inside-ness (bool) of a figure of radius r centred at 0, at offsets dx, dy (y down)."""
    ax, ay = np.abs(dx), np.abs(dy)
    name = SHAPES[shape]
    if name == "circle":
        return dx**2 + dy**2 <= r**2
    if name == "square":
        s = r * 0.82
        return (ax <= s) & (ay <= s)
    if name == "triangle":  # pointing up
        top, bottom = -r, r * 0.75
        half = (dy - top) / (bottom - top) * r * 1.05
        return (dy >= top) & (dy <= bottom) & (ax <= half)
    if name == "diamond":
        return ax + ay <= r * 1.1
    if name == "cross":
        w = r * 0.36
        return ((ax <= w) & (ay <= r)) | ((ay <= w) & (ax <= r))
    if name == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.5 * r) ** 2)
    raise ValueError(shape)


def _smooth_noise(rng: np.random.RandomState, size: int) -> np.ndarray:
    """Value noise in [0, 1]: a random 6x6 grid upsampled bilinearly."""
    grid = rng.rand(7, 7)
    u = np.linspace(0, 6, size, endpoint=False)
    i = u.astype(int)
    t = u - i
    rows = grid[i] * (1 - t)[:, None] + grid[i + 1] * t[:, None]
    return rows[:, i] * (1 - t)[None, :] + rows[:, i + 1] * t[None, :]


def _background(kind: int, rng: np.random.RandomState, size: int = SIZE) -> np.ndarray:
    """(size, size, 3) float background of one of the six kinds at a random phase."""
    a, b = BACKGROUND_RGB[kind]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    name = BACKGROUNDS[kind]
    if name == "slate":
        w = np.zeros((size, size))
    elif name == "sand stripes":
        period = 8.0
        w = (((yy + rng.uniform(0, period)) % period) < period / 2).astype(float)
    elif name == "green checks":
        period = 16.0
        ox, oy = rng.uniform(0, period, 2)
        w = ((((xx + ox) % period) < period / 2) ^ (((yy + oy) % period) < period / 2)).astype(float)
    elif name == "grey gradient":
        w = np.clip(xx / (size - 1) + rng.uniform(-0.2, 0.2), 0, 1) if rng.rand() < 0.5 else np.clip(1 - xx / (size - 1) + rng.uniform(-0.2, 0.2), 0, 1)
    elif name == "violet diagonals":
        period = 12.0
        w = (((xx + yy + rng.uniform(0, period)) % period) < period / 2).astype(float)
    else:  # brown noise
        w = _smooth_noise(rng, size)
    return a[None, None, :] * (1 - w[..., None]) + b[None, None, :] * w[..., None]


def render_sequence(shape: int, colour: int, background: int, direction: int, seed: int, frames: int = FRAMES) -> np.ndarray:
    """One sequence, uint8 (frames, SIZE, SIZE, 3), drawn from a seed."""
    rng = np.random.RandomState(seed)
    bg = _background(background, rng)
    rgb = np.clip(FIGURE_RGB[colour] + rng.uniform(-JITTER, JITTER, 3), 0, 1)
    r = rng.uniform(*RADIUS)
    travel = rng.uniform(*TRAVEL)
    angle = direction * math.pi / 4
    vx, vy = math.cos(angle), -math.sin(angle)  # y grows downwards: north is -y
    span_x, span_y = vx * travel, vy * travel
    margin = r + 1.0
    lo_x, hi_x = margin - min(0.0, span_x), SIZE - margin - max(0.0, span_x)
    lo_y, hi_y = margin - min(0.0, span_y), SIZE - margin - max(0.0, span_y)
    x0, y0 = rng.uniform(lo_x, hi_x), rng.uniform(lo_y, hi_y)
    out = np.empty((frames, SIZE, SIZE, 3), dtype=np.uint8)
    for t in range(frames):
        s = t / max(frames - 1, 1)
        cx, cy = x0 + span_x * s, y0 + span_y * s
        # the mask is drawn only in the figure's bounding box (in whole pixels), SUPER x SUPER samples a pixel
        x_lo, x_hi = max(int(cx - r) - 1, 0), min(int(cx + r) + 2, SIZE)
        y_lo, y_hi = max(int(cy - r) - 1, 0), min(int(cy + r) + 2, SIZE)
        sx = (np.arange(x_lo * SUPER, x_hi * SUPER) + 0.5) / SUPER
        sy = (np.arange(y_lo * SUPER, y_hi * SUPER) + 0.5) / SUPER
        inside = _shape_mask(shape, sx[None, :] - cx, sy[:, None] - cy, r)
        alpha = np.zeros((SIZE, SIZE, 1))
        alpha[y_lo:y_hi, x_lo:x_hi, 0] = inside.reshape(y_hi - y_lo, SUPER, x_hi - x_lo, SUPER).mean(axis=(1, 3))
        out[t] = np.round(255 * (bg * (1 - alpha) + rgb * alpha)).astype(np.uint8)
    return out


def build_shapes(content_ids=None, frames: int = FRAMES, progress: Optional[Callable[[int], None]] = None) -> dict:
    """Render the sequences of ``content_ids`` (all 216 by default): every content in every direction
    ``REPEATS`` times. Returns x (uint8 (N, frames, 64, 64, 3)) and the label arrays."""
    ids = np.arange(N_CONTENTS) if content_ids is None else np.asarray(content_ids, dtype=int)
    n = len(ids) * len(DIRECTIONS) * REPEATS
    x = np.empty((n, frames, SIZE, SIZE, 3), dtype=np.uint8)
    labels = {k: np.empty(n, dtype=np.int64) for k in LABEL_KEYS}
    i = 0
    for cid in ids:
        shape, colour, background = content_attributes(cid)
        for direction in range(len(DIRECTIONS)):
            for rep in range(REPEATS):
                seed = (int(cid) * len(DIRECTIONS) + direction) * REPEATS + rep
                x[i] = render_sequence(shape, colour, background, direction, seed, frames)
                for k, v in zip(LABEL_KEYS, (shape, colour, background, direction, cid)):
                    labels[k][i] = v
                i += 1
        if progress is not None:
            progress(1)
    return {"x": x, **labels}


def shapes_split(split: str, limit: int | None = None, frames: int | None = None, npz: str | Path | None = None, progress=None):
    """The sequences of one split as SequenceData (groups = content): ``train`` (173 contents, of which
    ``dsae train`` holds out 9), ``val`` (those 9) or ``test`` (43 contents). Rendered with ``frames``
    per sequence (8 when None), or read from ``npz`` (a file of ``dsae data shapes``; ``frames``, when
    given, must match it)."""
    from dsae_cli.data.sequences import SequenceData, held_out_groups

    if split not in ("train", "val", "test"):
        raise DsaeError(f"unknown shapes split {split!r}; use train, val or test")
    train_ids, test_ids = split_content_ids()
    ids = {"train": train_ids, "val": held_out_groups(train_ids), "test": test_ids}[split]
    if limit is not None:
        if limit < 1:
            raise DsaeError("--limit must be at least 1")
        ids = ids[: math.ceil(limit / (len(DIRECTIONS) * REPEATS))]
    if npz is not None:
        arrays = load_shapes_npz(npz)
        keep = np.isin(arrays["content_id"], ids)
        arrays = {k: v[keep] for k, v in arrays.items() if k != "split"}
        if frames is not None and arrays["x"].shape[1] != frames:
            raise DsaeError(f"the shapes file {npz} has {arrays['x'].shape[1]} frames per sequence, not {frames}; rebuild it with --frames {frames}")
    else:
        arrays = build_shapes(ids, frames or FRAMES, progress=progress)
    labels = {k: np.asarray(arrays[k]) for k in LABEL_KEYS}
    data = SequenceData(arrays["x"], labels["content_id"], "video", labels, f"shapes:{split}")
    if limit is not None and limit < len(data):
        data = data.subset(np.arange(limit))
    return data


def write_shapes_npz(path: str | Path, data: dict) -> Path:
    from dsae_cli.io.files import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, dataset=np.array("shapes"), **{k: np.asarray(v) for k, v in data.items()})
    return path


def is_shapes_npz(path: str | Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return "dataset" in npz.files and str(npz["dataset"]) == "shapes"
    except Exception:  # noqa: BLE001 - not an npz of ours
        return False


def load_shapes_npz(path: str | Path) -> dict:
    hint = f"rebuild it with `dsae data shapes -o {path}`"
    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in ("x", *LABEL_KEYS, "split")}
    except Exception as err:  # noqa: BLE001 - any read failure means the same thing to the user
        raise DsaeError(f"cannot read {path} as a shapes .npz ({type(err).__name__}: {err}); {hint}") from None
    x = data["x"]
    if x.dtype != np.uint8 or x.ndim != 5 or x.shape[2:] != (SIZE, SIZE, 3):
        raise DsaeError(f"{path}: x must be uint8 of shape (N, T, {SIZE}, {SIZE}, 3), got {x.dtype} {x.shape}; {hint}")
    return data


def write_shapes_gifs(directory: str | Path, data: dict, progress: Optional[Callable[[int], None]] = None) -> Path:
    """Every sequence as a looping GIF in ``DIR/<split>/`` plus ``DIR/labels.csv`` (one row per GIF).
    Returns the path of labels.csv."""
    import imageio.v3 as iio

    from dsae_cli.io.files import write_csv

    directory = Path(directory)
    rows = []
    for split in ("train", "val", "test"):
        (directory / split).mkdir(parents=True, exist_ok=True)
    for i in range(len(data["x"])):
        relpath = f"{data['split'][i]}/{gif_name(i, data)}"
        iio.imwrite(directory / relpath, data["x"][i], extension=".gif", duration=125, loop=0)
        rows.append([relpath, str(data["split"][i]), *(int(data[k][i]) for k in LABEL_KEYS), DIRECTIONS[int(data["action"][i])]])
        if progress is not None:
            progress(1)
    return write_csv(directory / "labels.csv", ["file", "split", *LABEL_KEYS, "direction"], rows)


def gif_name(i: int, labels: dict) -> str:
    shape, colour, background, action = (int(labels[k][i]) for k in ("shape", "colour", "background", "action"))
    return f"{i:05d}_{SHAPES[shape]}_{COLOURS[colour]}_{BACKGROUNDS[background].replace(' ', '-')}_{DIRECTIONS[action]}.gif"
