"""Rebuild the "Sprites" video benchmark (Li & Mandt, ICML 2018) from the embedded LPC layers.

The recipe is the one of the original generator (``YingzhenLi/Sprites``: ``random_character.py``,
``frame_to_npy.py``, ``load_sprites.py``), as written out in the project's LPC notes (the
README of the layer folder it was given, sections 2-6); in short:

* 1296 characters = 6 skins x 6 pants x 6 tops x 6 hairstyles, all wearing golden boots.
  ``char_id = 216*skin + 36*pants + 6*top + hair``.
* A character is drawn on an opaque black 832 x 1344 canvas by alpha-compositing (Porter-Duff
  "over") its layers in the order skin -> pants -> top (top 5: shirt, then tie) -> hair -> boots.
  The layer PNGs form a 13 x 21 grid of 64 x 64 cells; a cell is a frame (no resizing).
* 9 motions = 3 actions (walk, spellcast, slash) x 3 directions (front, left, right), 8 frames
  each, taken from fixed columns of fixed rows (:data:`ACTIONS`).
  Motion label ``action = 3*action_index + direction_index`` (front=0, left=1, right=2).
* Train/test split by character: ``RandomState(423).permutation(1296)``, first 1000 ids train,
  last 296 test (9000 / 2664 sequences).

Differences from the original files that are deliberate: frames are stored as uint8 RGB
(the original stored float32 ``/256``) and labels as integers (the original stored one-hot
vectors per frame). Everything here is pure numpy + Pillow (no torch) and deterministic.

Only the 63 cells the motions use are composited, and only where a layer is not fully
transparent, with integer arithmetic that reproduces Pillow's ``Image.alpha_composite``
bit for bit (see :func:`_composite_over_opaque`).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Optional

import numpy as np

from dsae_cli.errors import DsaeError

# ---------------------------------------------------------------------------------------------
# The recipe as data
# ---------------------------------------------------------------------------------------------

CELL = 64  # a grid cell (= one frame) is CELL x CELL pixels
SHEET_COLUMNS, SHEET_ROWS = 13, 21  # every layer PNG is 832 x 1344 = 13 x 21 cells
FRAMES = 8  # frames per sequence

ATTRIBUTE_NAMES = ("skin", "pants", "top", "hair")
VARIANTS = 6  # variants per attribute
N_CHARACTERS = VARIANTS**4  # 1296

# Layer files, relative to assets_dir(), in label order. Each entry is a tuple of the files
# composited (in that order) for that label: only top 5 has two (shirt, then tie).
SKINS: tuple[tuple[str, ...], ...] = (
    ("body/male/light.png",),
    ("body/male/tanned2.png",),
    ("body/male/darkelf.png",),
    ("body/male/darkelf2.png",),
    ("body/male/dark.png",),
    ("body/male/dark2.png",),
)
PANTS: tuple[tuple[str, ...], ...] = (
    ("legs/pants/male/white_pants_male.png",),
    ("legs/armor/male/golden_greaves_male.png",),
    ("legs/pants/male/red_pants_male.png",),
    ("legs/armor/male/metal_pants_male.png",),
    ("legs/pants/male/teal_pants_male.png",),
    ("formal_male_no_th-sh/pants.png",),
)
TOPS: tuple[tuple[str, ...], ...] = (
    ("torso/shirts/longsleeve/male/maroon_longsleeve.png",),
    ("torso/shirts/longsleeve/male/teal_longsleeve.png",),
    ("torso/shirts/longsleeve/male/white_longsleeve.png",),
    ("torso/plate/chest_male.png",),
    ("torso/leather/chest_male.png",),
    ("formal_male_no_th-sh/shirt.png", "formal_male_no_th-sh/tie.png"),
)
HAIRS: tuple[tuple[str, ...], ...] = (
    ("hair/male/messy2/green2.png",),
    ("hair/male/longknot/blue2.png",),
    ("hair/male/messy1/light-blonde.png",),
    ("hair/male/bangs/white.png",),
    ("hair/male/plain/ruby-red.png",),
    ("hair/male/jewfro/purple.png",),
)
# worn by every character, drawn last (over the pant legs)
BOOTS: tuple[str, ...] = ("feet/armor/male/golden_boots_male.png",)

LAYERS_BY_ATTRIBUTE = {"skin": SKINS, "pants": PANTS, "top": TOPS, "hair": HAIRS}

# Human-readable look of each variant, in label order.
SKIN_LOOKS = ("light", "tanned", "grey-violet (dark elf)", "pale grey-lilac", "brown", "dark brown")
PANTS_LOOKS = ("white trousers", "gold greaves", "red trousers", "grey metal", "teal (grey-green)", "dark green formal")
TOP_LOOKS = ("maroon shirt", "cyan/teal shirt", "white shirt", "grey plate", "brown leather", "white shirt + grey tie")
HAIR_LOOKS = ("spiky, green", "top knot, blue", "spiky, orange-blonde", "bangs, white", "plain, red", "curly, purple")
LOOKS = {"skin": SKIN_LOOKS, "pants": PANTS_LOOKS, "top": TOP_LOOKS, "hair": HAIR_LOOKS}

# Direction order of the motion label (not the order of the rows in the sheet, which is
# back, left, front, right within each 4-row animation group).
DIRECTIONS = ("front", "left", "right")


class Action(NamedTuple):
    """One action: the sheet row per direction and the sheet column of each frame t = 0..7."""

    name: str
    rows: dict  # direction name -> sheet row
    columns: tuple[int, ...]  # column of frame t, t = 0..7


# README section 5. Walk starts at the cycle's last drawing and never uses the standing pose
# (column 0); spellcast has 7 drawings and slash 6, hence the repeated columns.
ACTIONS: tuple[Action, ...] = (
    Action("walk", {"left": 9, "front": 10, "right": 11}, (8, 1, 2, 3, 4, 5, 6, 7)),
    Action("spellcast", {"left": 1, "front": 2, "right": 3}, (0, 1, 2, 3, 4, 5, 4, 6)),
    Action("slash", {"left": 13, "front": 14, "right": 15}, (0, 1, 2, 3, 4, 5, 4, 0)),
)

# label = 3*action + direction: 0 walk-front, 1 walk-left, 2 walk-right, 3 spellcast-front, ...
ACTION_NAMES: tuple[str, ...] = tuple(f"{a.name}-{d}" for a in ACTIONS for d in DIRECTIONS)
N_MOTIONS = len(ACTION_NAMES)  # 9

# (row, column) of frame t of motion label m
MOTION_CELLS: tuple[tuple[tuple[int, int], ...], ...] = tuple(
    tuple((a.rows[d], c) for c in a.columns) for a in ACTIONS for d in DIRECTIONS
)
# The 63 distinct cells used, sorted; compositing works on these only.
USED_CELLS: tuple[tuple[int, int], ...] = tuple(sorted({rc for frames in MOTION_CELLS for rc in frames}))
# FRAME_CELL_INDEX[m, t] = index into USED_CELLS of frame t of motion m
FRAME_CELL_INDEX = np.array([[USED_CELLS.index(rc) for rc in frames] for frames in MOTION_CELLS], dtype=np.intp)

N_TRAIN_CHARACTERS = 1000
SPLIT_SEED = 423

DATA_KEYS = ("x", "skin", "pants", "top", "hair", "action", "char_id", "split")
LABEL_KEYS = ("skin", "pants", "top", "hair", "action", "char_id")

REBUILD_HINT = "rebuild it with `dsae data sprites -o FILE.npz`"


def assets_dir() -> Path:
    """The folder of the embedded LPC layer PNGs (see its README.md for source and licence)."""
    return Path(__file__).parent.parent / "assets" / "lpc"


# ---------------------------------------------------------------------------------------------
# Characters and the split
# ---------------------------------------------------------------------------------------------


def character_id(skin: int, pants: int, top: int, hair: int) -> int:
    """``216*skin + 36*pants + 6*top + hair`` (skin is the most significant base-6 digit)."""
    for name, value in zip(ATTRIBUTE_NAMES, (skin, pants, top, hair)):
        if not 0 <= int(value) < VARIANTS:
            raise ValueError(f"{name} must be in 0..{VARIANTS - 1}, got {value}")
    return 216 * int(skin) + 36 * int(pants) + 6 * int(top) + int(hair)


def character_attributes(char_id: int) -> tuple[int, int, int, int]:
    """Inverse of :func:`character_id`: ``(skin, pants, top, hair)``."""
    char_id = int(char_id)
    if not 0 <= char_id < N_CHARACTERS:
        raise ValueError(f"character id must be in 0..{N_CHARACTERS - 1}, got {char_id}")
    return char_id // 216, char_id // 36 % 6, char_id // 6 % 6, char_id % 6


def split_character_ids() -> tuple[np.ndarray, np.ndarray]:
    """``(train_ids, test_ids)``, each sorted (int64): the original split of the 1296 characters.

    The original ran ``np.random.seed(423); np.random.permutation(1296)`` and took the first 1000
    ids for training. ``RandomState(423)`` gives the same legacy MT19937 stream without touching
    NumPy's global random state.
    """
    perm = np.random.RandomState(SPLIT_SEED).permutation(N_CHARACTERS)
    train = np.sort(perm[:N_TRAIN_CHARACTERS]).astype(np.int64)
    test = np.sort(perm[N_TRAIN_CHARACTERS:]).astype(np.int64)
    return train, test


# ---------------------------------------------------------------------------------------------
# Compositing
# ---------------------------------------------------------------------------------------------


class _SparseLayer(NamedTuple):
    """The non-transparent pixels of one layer within the used cells, ready for compositing."""

    index: np.ndarray  # flat pixel positions in a (63*64*64,) pixel array
    src_premultiplied: np.ndarray  # (n, 3) uint16: src_rgb * src_alpha
    dst_weight: np.ndarray  # (n, 1) uint16: 255 - src_alpha


def _load_sheet(relpath: str) -> np.ndarray:
    """A layer PNG as an RGBA uint8 array (1344, 832, 4)."""
    from PIL import Image

    path = assets_dir() / relpath
    try:
        with Image.open(path) as img:
            # palette PNGs with a transparent colour: RGBA conversion applies the tRNS entry
            rgba = np.asarray(img.convert("RGBA"))
    except (OSError, ValueError) as err:
        raise DsaeError(f"cannot read the embedded sprite layer {path} ({err}); reinstall dsae") from err
    if rgba.shape != (SHEET_ROWS * CELL, SHEET_COLUMNS * CELL, 4):
        raise DsaeError(f"embedded sprite layer {path} has the wrong size {rgba.shape[1]}x{rgba.shape[0]}; reinstall dsae")
    return rgba


def _used_cells(sheet: np.ndarray) -> np.ndarray:
    """Crop the used cells out of a sheet: (63, 64, 64, C)."""
    return np.stack([sheet[r * CELL : (r + 1) * CELL, c * CELL : (c + 1) * CELL] for r, c in USED_CELLS])


@functools.lru_cache(maxsize=None)
def _sparse_layer(relpath: str) -> _SparseLayer:
    cells = _used_cells(_load_sheet(relpath)).reshape(-1, 4)
    index = np.flatnonzero(cells[:, 3])  # fully transparent pixels leave the canvas unchanged
    rgb = cells[index, :3].astype(np.uint16)
    alpha = cells[index, 3:].astype(np.uint16)
    return _SparseLayer(index, rgb * alpha, 255 - alpha)


def _composite_over_opaque(pixels: np.ndarray, layer: _SparseLayer) -> None:
    """Draw ``layer`` over the opaque RGB ``pixels`` (n_pixels, 3) uint8, in place.

    Pillow's ``alpha_composite`` (fixed point, 7 extra bits) reduces, when the destination is
    opaque, to ``round((src*a + dst*(255-a)) / 255)`` exactly, with the result opaque again; the
    test suite checks this against Pillow for every (src, dst, alpha) triple. Ties cannot occur
    (255 is odd), and every intermediate fits in uint16 (at most 65025 + 128 + 254).
    """
    dst = pixels[layer.index].astype(np.uint16)
    v = layer.src_premultiplied + dst * layer.dst_weight
    v += 128
    v += v >> 8
    v >>= 8
    pixels[layer.index] = v.astype(np.uint8)


def _composite_layers(pixels: np.ndarray, relpaths: Iterable[str]) -> np.ndarray:
    for relpath in relpaths:
        _composite_over_opaque(pixels, _sparse_layer(relpath))
    return pixels


def _check_ids(char_ids: Iterable[int]) -> np.ndarray:
    ids = np.asarray(list(char_ids) if not isinstance(char_ids, np.ndarray) else char_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError("character ids must be a 1-D sequence of integers")
    if ids.size and (ids.min() < 0 or ids.max() >= N_CHARACTERS):
        raise ValueError(f"character ids must be in 0..{N_CHARACTERS - 1}")
    return ids.astype(np.int64)


def build_characters(char_ids: Iterable[int], progress: Optional[Callable[[int], None]] = None) -> dict:
    """Build the 9 sequences of each character in ``char_ids`` (in that order).

    Returns the same dict as :func:`build_sprites`, with ``9*len(char_ids)`` sequences ordered by
    the given characters, then motion label 0..8. ``progress(1)`` is called after each character.
    Ids in ascending order are fastest: shared prefixes (same skin, pants, top) are reused.
    """
    ids = _check_ids(char_ids)
    n = len(ids) * N_MOTIONS
    x = np.empty((n, FRAMES, CELL, CELL, 3), dtype=np.uint8)
    labels = {key: np.empty(n, dtype=np.int64) for key in LABEL_KEYS}

    n_pixels = len(USED_CELLS) * CELL * CELL
    black = np.zeros((n_pixels, 3), dtype=np.uint8)
    # Depth-first reuse: prefix_key[d] / prefix_pixels[d] hold the canvas after the first d+1
    # attributes (skin; skin+pants; skin+pants+top) of the last character built.
    prefix_key: list = [None, None, None]
    prefix_pixels: list = [None, None, None]

    for k, char_id in enumerate(ids):
        attributes = character_attributes(char_id)
        parent = black
        for depth, name in enumerate(ATTRIBUTE_NAMES[:3]):
            key = attributes[: depth + 1]
            if prefix_key[depth] != key:
                layers = LAYERS_BY_ATTRIBUTE[name][attributes[depth]]
                prefix_pixels[depth] = _composite_layers(parent.copy(), layers)
                prefix_key[depth] = key  # a full prefix, so deeper keys need no invalidation
            parent = prefix_pixels[depth]
        pixels = _composite_layers(parent.copy(), HAIRS[attributes[3]] + BOOTS)
        cells = pixels.reshape(len(USED_CELLS), CELL, CELL, 3)

        rows = slice(k * N_MOTIONS, (k + 1) * N_MOTIONS)
        np.take(cells, FRAME_CELL_INDEX, axis=0, out=x[rows])
        for name, value in zip(ATTRIBUTE_NAMES, attributes):
            labels[name][rows] = value
        labels["action"][rows] = np.arange(N_MOTIONS)
        labels["char_id"][rows] = char_id
        if progress is not None:
            progress(1)

    _, test_ids = split_character_ids()
    split = np.where(np.isin(labels["char_id"], test_ids), "test", "train")
    return {"x": x, **labels, "split": split}


def build_sprites(progress: Optional[Callable[[int], None]] = None) -> dict:
    """Build the whole Sprites set: 1296 characters x 9 motions = 11664 sequences.

    Returns a dict of numpy arrays:

    * ``x``: uint8 (11664, 8, 64, 64, 3), RGB frames, channels last, black background;
    * ``skin``, ``pants``, ``top``, ``hair``: int64 (11664,), 0..5 (see :data:`LOOKS`);
    * ``action``: int64 (11664,), motion label 0..8 (see :data:`ACTION_NAMES`);
    * ``char_id``: int64 (11664,), ``216*skin + 36*pants + 6*top + hair``;
    * ``split``: unicode (11664,), ``"train"`` (9000) or ``"test"`` (2664), by character.

    Sequences are ordered by character id, then motion label: row ``9*char_id + action``.
    ``progress(1)`` is called after each of the 1296 characters.
    """
    return build_characters(range(N_CHARACTERS), progress=progress)


def sprites_split(split: str, limit: int | None = None, npz: str | Path | None = None, progress=None):
    """The Sprites sequences of one split: ``train`` (the 1000 training characters), ``val`` (the 50 of
    them that ``dsae train`` holds out for validation) or ``test`` (the other 296 characters).

    Only the split's own characters are rendered (:func:`build_characters`), or read from ``npz`` (a
    file of ``dsae data sprites``). ``limit`` keeps the first N sequences (for tests and smoke runs)
    and renders only the characters they need.
    """
    from dsae_cli.data.sequences import SequenceData, held_out_groups

    if split not in ("train", "val", "test"):
        raise DsaeError(f"unknown Sprites split {split!r}; use train, val or test")
    train_ids, test_ids = split_character_ids()
    val_ids = held_out_groups(train_ids)
    ids = {"train": train_ids, "val": val_ids, "test": test_ids}[split]  # val: the characters `dsae train` holds out
    if limit is not None:
        if limit < 1:
            raise DsaeError("--limit must be at least 1")
        ids = ids[: math.ceil(limit / N_MOTIONS)]
    if npz is not None:
        from dsae_cli.data.sprites_files import load_sprites_npz

        arrays = load_sprites_npz(npz)
        keep = np.isin(np.asarray(arrays["char_id"]), ids)
        arrays = {k: np.asarray(arrays[k])[keep] for k in ("x", "skin", "pants", "top", "hair", "action", "char_id")}
    else:
        arrays = build_characters(ids, progress=progress)
    labels = {k: np.asarray(arrays[k]) for k in ("skin", "pants", "top", "hair", "action", "char_id")}
    data = SequenceData(arrays["x"], labels["char_id"], "video", labels, f"sprites:{split}")
    if limit is not None and limit < len(data):
        data = data.subset(np.arange(limit))
    return data
