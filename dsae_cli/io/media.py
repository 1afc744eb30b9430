"""Shaping, writing and laying out the frames of short animations (numpy ``uint8`` RGB, ``(N, H, W, 3)``).

Helpers resize frames to the model's size and cut fixed-length windows out of longer clips;
writers turn frames into a looping GIF, an MP4 or WebM video (:func:`write_video` picks by the
file name) or a PNG, always atomically so an existing file survives a failed write; grids lay sequences out as pictures and animations for READMEs and reports. Reading
any input into frames is :func:`dsae_cli.io.video.read_frames`.

Every problem the user can fix is raised as a one-line :class:`~dsae_cli.errors.DsaeError`;
library functions never print. Only numpy and Pillow are used (no torch; MP4 and WebM are encoded by
the ffmpeg of ``imageio-ffmpeg``, loaded when one is written), so this module is cheap to import and test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path, check_output_path

__all__ = [
    "resize_frames",
    "select_window",
    "window_starts",
    "sliding_windows",
    "write_gif",
    "write_video",
    "VIDEO_WRITE_SUFFIXES",
    "write_png",
    "make_grid",
    "grid_animation",
    "upscale",
    "to_uint8",
]

# GIF delays are stored in 1/100 s, and browsers replace delays under 20 ms with 100 ms, so
# anything faster than 50 fps would play *slower*; refuse it rather than surprise the user.
MAX_GIF_FPS = 50.0

# What write_video writes, by the output's suffix: a looping GIF (the default of every command), an
# MP4 (H.264, yuv420p: plays everywhere) or a WebM (VP9).
VIDEO_WRITE_SUFFIXES = (".gif", ".mp4", ".webm")
MAX_VIDEO_FPS = 240.0


# --------------------------------------------------------------------------------------------
# shaping frames


def _check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    """Programming-error guard: frames must be uint8 ``(N, H, W, 3)``."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what} must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0:
        raise DsaeError(f"there are no {what} to use; give an animation with at least one frame")
    return frames


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Convert float images in [0, 1] (e.g. model outputs) to ``uint8``, clipping out-of-range values."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.rint(np.clip(images.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Resize frames to ``size x size``; returns ``(N, size, size, 3)`` uint8.

    Non-square frames are first padded with black to a square, centred (extra pixel at the
    bottom/right), rather than cropped or stretched: cropping could cut the character off and
    stretching distorts it, while a black border matches the Sprites benchmark background.

    Resampling: BOX (area average) when shrinking, which is alias-free; NEAREST when enlarging by
    a whole factor, which keeps pixel art crisp; BILINEAR for other enlargements. Frames that are
    already the right size are returned unchanged (the same array).
    """
    frames = _check_frames(frames)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    n, height, width, _ = frames.shape
    if height == width == size:
        return frames
    side = max(height, width)
    if height != width:
        square = np.zeros((n, side, side, 3), dtype=np.uint8)
        top, left = (side - height) // 2, (side - width) // 2
        square[:, top : top + height, left : left + width] = frames
        frames = square
        if side == size:
            return frames
    if side > size:
        resample = Image.Resampling.BOX
    elif size % side == 0:
        resample = Image.Resampling.NEAREST
    else:
        resample = Image.Resampling.BILINEAR
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((size, size), resample))
    return out


def select_window(
    frames: np.ndarray, length: int, start: int = 0, stride: int = 1, *, source: str | Path | None = None
) -> np.ndarray:
    """Return ``frames[start : start + length*stride : stride]``: exactly ``length`` frames.

    ``source`` names the input in the error message when there are not enough frames.
    """
    frames = _check_frames(frames)
    if length < 1 or stride < 1 or start < 0:
        raise DsaeError(
            f"window needs length >= 1, stride >= 1 and start >= 0; got length {length}, stride {stride}, start {start}"
        )
    n = len(frames)
    needed = start + (length - 1) * stride + 1
    if n < needed:
        name = str(source) if source is not None else "the input"
        detail = "" if (start, stride) == (0, 1) else f" (frames {start} to {needed - 1} with stride {stride})"
        raise DsaeError(
            f"{name} has {n} frame{'s' if n != 1 else ''} but the model needs {length}{detail}; give a"
            " longer animation" + ("" if (start, stride) == (0, 1) else ", an earlier start or a smaller stride")
        )
    return frames[start : start + length * stride : stride]


def window_starts(n_frames: int, length: int, hop: int) -> list[int]:
    """First-frame indices of the windows :func:`sliding_windows` returns.

    Windows start every ``hop`` frames; if the last of those stops short of the end, one more
    window is aligned to the end so every frame belongs to at least one window.
    """
    if length < 1 or hop < 1:
        raise DsaeError(f"windows need length >= 1 and hop >= 1; got length {length}, hop {hop}")
    if n_frames < length:
        raise DsaeError(f"the input has {n_frames} frames but the model needs {length}; give a longer animation")
    starts = list(range(0, n_frames - length + 1, hop))
    if starts[-1] != n_frames - length:
        starts.append(n_frames - length)
    return starts


def sliding_windows(frames: np.ndarray, length: int, hop: int) -> np.ndarray:
    """All windows of ``length`` frames every ``hop`` frames: ``(num_windows, length, H, W, 3)``.

    The last window is aligned to the end (see :func:`window_starts`), so it may overlap the
    previous one more than ``hop`` implies.
    """
    frames = _check_frames(frames)
    starts = window_starts(len(frames), length, hop)
    return np.stack([frames[s : s + length] for s in starts])


# --------------------------------------------------------------------------------------------
# writing


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write one image ``(H, W, 3)`` (or ``(H, W)`` grey, ``(H, W, 4)`` RGBA) uint8 as a PNG, atomically."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"image must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {image.dtype} {image.shape}")
    path = check_output_path(path)
    pil = Image.fromarray(image)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write frames ``(N, H, W, 3)`` uint8 as a looping GIF at ``fps``, atomically.

    Every frame is kept. Pillow's GIF writer silently merges a frame that looks identical to the
    previous one into it (adding up their durations), so a round trip would lose frames and
    windows would come back too short. When two consecutive frames would be identical *after*
    quantisation, the later one gets one pixel (top-left) whose blue value differs by one (the
    lowest bit flipped): invisible, but enough to keep it a separate frame.

    Colours: each frame gets its own palette. A frame with at most 255 distinct colours (any
    sprite) is stored exactly; richer frames are quantised to 255 colours without dithering, by
    Pillow's max-coverage method (median cut, the default, has similar mean error, about 3.5-4
    levels on smooth 64x64 gradients, but sometimes maps a colour far off: errors near 200 seen).
    Delays are stored in 1/100 s; they are spread so the total length matches ``N / fps`` (e.g.
    30 fps alternates 30 and 40 ms).
    """
    frames = _check_frames(frames)
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        rate = math.nan
    if not (math.isfinite(rate) and 0 < rate <= MAX_GIF_FPS):
        raise DsaeError(f"GIF frame rate must be above 0 and at most {MAX_GIF_FPS:g} fps; got {fps}")
    fps = rate
    path = check_output_path(path)
    images = _gif_frames_keeping_duplicates(frames)
    # cumulative rounding to centiseconds keeps the overall speed right; at least 2 cs per frame
    # because viewers treat shorter delays as 10 cs
    ticks = [round((i + 1) * 100 / fps) - round(i * 100 / fps) for i in range(len(images))]
    durations = [max(2, t) * 10 for t in ticks]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=durations,
            loop=0,
            disposal=1,  # keep the previous frame: Pillow then stores only the changed rectangle
            optimize=False,  # keep our palettes exactly as built
        )


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> None:
    """Write frames ``(N, H, W, 3)`` uint8 as the animation ``path``'s suffix names, atomically.

    ``.gif``: :func:`write_gif`. ``.mp4``: H.264 in yuv420p; ``.webm``: VP9 in yuv420p; both at the
    frames' own size (an odd side is padded by one repeated row or column, as yuv420p needs even
    sides) and lossy (colours within a few levels; yuv420p halves the colour resolution). Any other
    suffix is an error that names these three.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        write_gif(path, frames, fps)
        return
    if suffix not in VIDEO_WRITE_SUFFIXES:
        raise DsaeError(
            f"cannot write {path}: animations are written as {', '.join(VIDEO_WRITE_SUFFIXES[:-1])} or"
            f" {VIDEO_WRITE_SUFFIXES[-1]}; end the output name with one of these"
        )
    frames = _check_frames(frames)
    try:
        rate = float(fps)
    except (TypeError, ValueError):
        rate = math.nan
    if not (math.isfinite(rate) and 0 < rate <= MAX_VIDEO_FPS):
        raise DsaeError(f"video frame rate must be above 0 and at most {MAX_VIDEO_FPS:g} fps; got {fps}")
    from dsae_cli.io import ffmpeg

    path = check_output_path(path)
    with atomic_path(path) as tmp:
        ffmpeg.encode(tmp, frames, rate, name=path)


def _quantize(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Palette-index one frame: returns ``(indices (H, W) uint8, palette (256, 3) uint8)``.

    At most 255 entries are used, leaving index 255 free for the duplicate-frame nudge.
    """
    flat = frame.reshape(-1, 3)
    # pack RGB into one int so np.unique is fast
    packed = (flat[:, 0].astype(np.uint32) << 16) | (flat[:, 1].astype(np.uint32) << 8) | flat[:, 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    palette = np.zeros((256, 3), dtype=np.uint8)
    if len(colours) <= 255:
        palette[: len(colours)] = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], 1)
        return inverse.reshape(frame.shape[:2]).astype(np.uint8), palette
    quantized = Image.fromarray(frame).quantize(
        colors=255, method=Image.Quantize.MAXCOVERAGE, dither=Image.Dither.NONE
    )
    used = np.asarray(quantized.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)[:255]
    palette[: len(used)] = used
    return np.asarray(quantized, dtype=np.uint8), palette


def _gif_frames_keeping_duplicates(frames: np.ndarray) -> list[Image.Image]:
    images: list[Image.Image] = []
    previous: np.ndarray | None = None
    for frame in frames:
        indices, palette = _quantize(frame)
        shown = palette[indices]
        if previous is not None and np.array_equal(shown, previous):
            nudged = shown[0, 0].copy()
            nudged[2] ^= 1
            palette[255] = nudged
            indices = indices.copy()
            indices[0, 0] = 255
            shown = palette[indices]
        image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), np.ascontiguousarray(indices).tobytes())
        image.putpalette(palette.tobytes(), "RGB")
        images.append(image)
        previous = shown
    return images


# --------------------------------------------------------------------------------------------
# pictures


def _background(bg: int | Sequence[int]) -> np.ndarray:
    colour = np.broadcast_to(np.asarray(bg, dtype=np.int64), (3,))
    if colour.min() < 0 or colour.max() > 255:
        raise ValueError(f"background colour must be 0..255, got {bg}")
    return colour.astype(np.uint8)


def _as_sequence(seq: np.ndarray, index: int) -> np.ndarray:
    seq = np.asarray(seq)
    if seq.ndim == 3:  # a single image counts as a one-frame row
        seq = seq[None]
    return _check_frames(seq, f"row {index}")


def _same_size_sequences(items, caller: str, what: str):
    """(sequences, height, width) of frame sequences that must all share one frame size."""
    if len(items) == 0:
        raise ValueError(f"{caller} needs at least one {what}")
    seqs = [_as_sequence(s, i) for i, s in enumerate(items)]
    height, width = seqs[0].shape[1:3]
    for i, s in enumerate(seqs):
        if s.shape[1:3] != (height, width):
            raise ValueError(f"{what} {i} has frames of {s.shape[2]}x{s.shape[1]}, {what} 0 has {width}x{height}")
    return seqs, height, width


def make_grid(
    rows: Sequence[np.ndarray],
    pad: int = 2,
    bg: int | Sequence[int] = 255,
    labels: Sequence[str] | None = None,
) -> np.ndarray:
    """Lay sequences out as one still picture: row ``i`` shows the frames of ``rows[i]`` left to right.

    Each row is ``(T_i, H, W, 3)`` (or one ``(H, W, 3)`` image); all frames must share H and W, rows
    may differ in length (short rows end early, the rest is background). ``pad`` pixels of ``bg``
    surround every frame. ``labels`` (one per row) are written at the left of each row in Pillow's
    default font, in black or white, whichever stands out against ``bg``.
    Returns ``(H_total, W_total, 3)`` uint8.
    """
    seqs, height, width = _same_size_sequences(rows, "make_grid", "row")
    if labels is not None and len(labels) != len(seqs):
        raise ValueError(f"got {len(labels)} labels for {len(seqs)} rows")
    colour = _background(bg)
    font = ImageFont.load_default() if labels else None
    label_width = 0
    if labels:
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        label_width = max(int(math.ceil(probe.textbbox((0, 0), str(t), font=font)[2])) for t in labels) + pad
    longest = max(len(s) for s in seqs)
    total_h = pad + len(seqs) * (height + pad)
    total_w = pad + label_width + longest * (width + pad)
    grid = np.empty((total_h, total_w, 3), dtype=np.uint8)
    grid[:] = colour
    for r, seq in enumerate(seqs):
        y = pad + r * (height + pad)
        for t, frame in enumerate(seq):
            x = pad + label_width + t * (width + pad)
            grid[y : y + height, x : x + width] = frame
    if labels:
        picture = Image.fromarray(grid)
        draw = ImageDraw.Draw(picture)
        ink = (0, 0, 0) if int(colour.astype(int).sum()) > 3 * 127 else (255, 255, 255)
        for r, text in enumerate(labels):
            top, bottom = draw.textbbox((0, 0), str(text), font=font)[1::2]
            y = pad + r * (height + pad) + (height - (bottom - top)) // 2 - top
            draw.text((pad, y), str(text), fill=ink, font=font)
        grid = np.asarray(picture).copy()
    return grid


def grid_animation(
    sequences: Sequence[np.ndarray],
    cols: int | None = None,
    pad: int = 2,
    bg: int | Sequence[int] = 255,
) -> np.ndarray:
    """Tile N sequences into one animation ``(T, H', W', 3)``: frame t shows every sequence's frame t.

    The tiles fill a near-square grid (``cols`` defaults to ``ceil(sqrt(N))``) row by row, with
    ``pad`` pixels of ``bg`` around each. Sequences shorter than the longest hold their last
    frame, so nothing blinks out. Write the result with :func:`write_gif` or :func:`write_video`.
    """
    seqs, height, width = _same_size_sequences(sequences, "grid_animation", "sequence")
    n = len(seqs)
    cols = cols or math.ceil(math.sqrt(n))
    if cols < 1:
        raise ValueError(f"cols must be >= 1, got {cols}")
    cols = min(cols, n)
    grid_rows = math.ceil(n / cols)
    length = max(len(s) for s in seqs)
    out = np.empty((length, pad + grid_rows * (height + pad), pad + cols * (width + pad), 3), dtype=np.uint8)
    out[:] = _background(bg)
    for i, seq in enumerate(seqs):
        y = pad + (i // cols) * (height + pad)
        x = pad + (i % cols) * (width + pad)
        out[: len(seq), y : y + height, x : x + width] = seq
        out[len(seq) :, y : y + height, x : x + width] = seq[-1]
    return out


def upscale(image_or_frames: np.ndarray, factor: int) -> np.ndarray:
    """Enlarge ``(H, W, C)`` or ``(N, H, W, C)`` by a whole ``factor`` with nearest neighbour (crisp pixels)."""
    array = np.asarray(image_or_frames)
    if not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"factor must be a whole number >= 1, got {factor}")
    if array.ndim not in (3, 4):
        raise ValueError(f"expected (H, W, C) or (N, H, W, C), got shape {array.shape}")
    if factor == 1:
        return array
    h_axis = array.ndim - 3
    return np.repeat(np.repeat(array, factor, axis=h_axis), factor, axis=h_axis + 1)
