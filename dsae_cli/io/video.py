"""Reading the short animations the DSAE works on: GIF/APNG/PNG files, other stills, folders of
frames, and video files (MP4, WebM, MOV, AVI, MKV, ...).

Every reader returns one format: a numpy ``uint8`` array of RGB frames shaped ``(N, H, W, 3)``,
whatever the user gives (animated or still GIF, APNG, PNG, a folder of numbered frame images,
palette/greyscale/RGBA/16-bit images, a video). Memory guards shrink huge frames as they are decoded
and refuse clips too long or too large to hold. :mod:`dsae_cli.io.media` shapes, writes and lays out
the frames.

Every problem the user can fix (missing file, corrupt image, too few frames, ...) is raised as a
one-line :class:`~dsae_cli.errors.DsaeError`; library functions never print. Images are read with
numpy and Pillow; videos with the ffmpeg of ``imageio-ffmpeg`` (:mod:`dsae_cli.io.ffmpeg`, imported
only when a video is read). No torch, so this module is cheap to import and test.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from dsae_cli.errors import DsaeError

__all__ = ["FRAME_SUFFIXES", "VIDEO_FILE_SUFFIXES", "read_frames"]

# Image files picked up from a folder of frames (compared lower-case).
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")

# Video files, decoded by ffmpeg rather than Pillow (compared lower-case; the same as
# dsae_cli.io.ffmpeg.READ_SUFFIXES, repeated so that naming them imports no subprocess code).
VIDEO_FILE_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

_GIVE = "give a GIF, a PNG, a video (MP4, WebM, MOV, AVI, MKV) or a folder of frame images"

# Defaults for the memory guards of read_frames. 512 px keeps detail far beyond the model's
# 64x64 while bounding each decoded frame to < 1 MiB; the byte budget bounds the whole clip.
DEFAULT_MAX_SIDE = 512
DEFAULT_MAX_FRAMES = 10_000
DEFAULT_MAX_BYTES = 1 << 30

# Errors Pillow raises for truncated/corrupt data (zlib/struct leak out of the PNG decoder).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


def read_frames(
    path: str | Path,
    *,
    max_side: int | None = DEFAULT_MAX_SIDE,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_bytes: int = DEFAULT_MAX_BYTES,
    stop: int | None = None,
) -> np.ndarray:
    """Read an animation (or a still) as RGB frames, ``uint8`` shaped ``(N, H, W, 3)``.

    ``path`` may be an animated or still GIF, an APNG or PNG, any other single image Pillow reads
    (JPG, BMP, WEBP, ...: one frame), a video file (``VIDEO_FILE_SUFFIXES``: MP4, WebM, MOV, AVI,
    MKV, ...; its first video stream, decoded by ffmpeg), or a folder of frame images
    (``FRAME_SUFFIXES``, hidden files skipped) taken in natural name order (``frame2`` before
    ``frame10``); from a folder each file gives one frame (its first, if it is itself animated).
    ``stop`` reads only the first ``stop`` frames (a window at the start of a long clip needs no more).

    Frames are the fully composed pictures a viewer shows (GIF/APNG disposal and partial frames
    applied). Transparency is composited over black, the background of the Sprites benchmark;
    greyscale, palette, 16-bit, CMYK, ... become 8-bit RGB.

    Memory guards: a frame whose longer side exceeds ``max_side`` (``None``: no limit) is shrunk
    to it, keeping the aspect ratio, as soon as it is decoded, so a huge clip never sits in memory
    at full size; more than ``max_frames`` frames, or more than ``max_bytes`` of decoded (shrunk)
    frames, is an error rather than an out-of-memory crash.

    Raises :class:`DsaeError` (one line) for anything wrong with the input. Truncation is always
    caught, and so is corruption in PNG (checksummed) and in videos (ffmpeg reporting any decoding
    error fails the read); GIF has no checksums and Pillow decodes garbled GIF data without
    complaint, so a damaged GIF may read as damaged-looking frames.
    """
    path = Path(path)
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1 or None, got {max_side}")
    if stop is not None and stop < 1:
        raise ValueError(f"stop must be >= 1 or None, got {stop}")
    if not path.exists():
        raise DsaeError(f"{path} not found; check the path ({_GIVE})")
    budget = _FrameBudget(path, max_frames, max_bytes)
    if path.is_dir():
        frames = _read_folder(path, max_side, budget)[:stop]
    elif path.suffix.lower() in VIDEO_FILE_SUFFIXES:
        frames = _read_video_file(path, max_side, budget, stop)
    else:
        frames = _read_file_frames(path, max_side, budget, first_only=False, stop=stop)
    if not frames:
        # Pillow always yields a first frame for a valid file, so this is an odd container.
        raise DsaeError(f"{path} contains no frames; give an animation with at least one frame")
    # stacking briefly holds the frames twice, so peak memory is about 2 * max_bytes
    return np.stack(frames)


class _FrameBudget:
    """Counts frames and bytes as they are decoded and stops before memory runs out."""

    def __init__(self, path: Path, max_frames: int, max_bytes: int):
        self.path, self.max_frames, self.max_bytes = path, max_frames, max_bytes
        self.frames = 0
        self.bytes = 0

    def add(self, frame: np.ndarray) -> None:
        self.frames += 1
        self.bytes += frame.nbytes
        if self.frames > self.max_frames:
            raise DsaeError(
                f"{self.path} has more than {self.max_frames} frames; cut it shorter first (only a few"
                " frames per window are used)"
            )
        if self.bytes > self.max_bytes:
            h, w = frame.shape[:2]
            raise DsaeError(
                f"{self.path} is too big to hold in memory ({self.frames} frames of {w}x{h} already exceed"
                f" {self.max_bytes >> 20} MiB); cut it shorter or lower its resolution"
            )


def _natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10 (ties broken by name)."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p), name


def _read_folder(folder: Path, max_side: int | None, budget: _FrameBudget) -> list[np.ndarray]:
    try:
        names = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError as err:
        raise DsaeError(f"folder {folder} cannot be listed ({_one_line(err)}); check its permissions") from None
    files = sorted((p for p in names if p.suffix.lower() in FRAME_SUFFIXES), key=lambda p: _natural_key(p.name))
    if not files:
        raise DsaeError(
            f"folder {folder} has no frame images ({', '.join(FRAME_SUFFIXES)}); put the frames there"
            " as numbered files such as frame0.png, frame1.png, ..."
        )
    if len(files) > budget.max_frames:
        raise DsaeError(f"folder {folder} has {len(files)} frames, more than {budget.max_frames}; use fewer frames")
    frames: list[np.ndarray] = []
    first_size: tuple[int, int] | None = None
    for file in files:
        size_box: list[tuple[int, int]] = []
        frames += _read_file_frames(file, max_side, budget, first_only=True, size_out=size_box)
        # compare the stored sizes, not the shrunk ones, so the message names real sizes
        if first_size is None:
            first_size = size_box[0]
        elif size_box[0] != first_size:
            raise DsaeError(
                f"frames in {folder} differ in size: {files[0].name} is {first_size[0]}x{first_size[1]} but"
                f" {file.name} is {size_box[0][0]}x{size_box[0][1]}; make all frames the same size"
            )
    return frames


def _read_video_file(path: Path, max_side: int | None, budget: _FrameBudget, stop: int | None) -> list[np.ndarray]:
    """The frames of a video file, decoded by ffmpeg and shrunk to ``max_side`` as they are decoded."""
    from dsae_cli.io import ffmpeg

    if not path.is_file():
        raise DsaeError(f"{path} is not a regular file; {_GIVE}")
    if path.stat().st_size == 0:
        raise DsaeError(f"{path} is empty (0 bytes); re-export or re-download it")
    return ffmpeg.decode(path, max_side, budget, stop)


def _read_file_frames(
    path: Path,
    max_side: int | None,
    budget: _FrameBudget,
    *,
    first_only: bool,
    size_out: list | None = None,
    stop: int | None = None,
) -> list[np.ndarray]:
    """Decode the composed RGB frames of one image file, each shrunk to ``max_side`` as it is decoded
    (the first ``stop`` only, if given)."""
    if not path.is_file():
        raise DsaeError(f"{path} is not a regular file; {_GIVE}")
    if path.stat().st_size == 0:
        raise DsaeError(f"{path} is empty (0 bytes); re-export or re-download it")
    frames: list[np.ndarray] = []
    animated = False
    # Pillow warns about huge images and odd palettes on stderr; we enforce our own limits instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            im = Image.open(path)
        except UnidentifiedImageError:
            raise DsaeError(_not_an_image_message(path)) from None
        except Image.DecompressionBombError:
            raise DsaeError(f"{path} is too large to decode; downscale it first") from None
        except _DECODE_ERRORS as err:
            raise DsaeError(f"{path} could not be read ({_one_line(err)}); check that it is a valid image") from None
        try:
            with im:
                width, height = im.size
                limit = Image.MAX_IMAGE_PIXELS
                if limit is not None and width * height > limit:
                    raise DsaeError(
                        f"{path} is {width}x{height} pixels, too large to decode (limit"
                        f" {limit // 1_000_000} megapixels); downscale it first"
                    )
                animated = getattr(im, "is_animated", False)
                # stills from phones carry their rotation in EXIF (tag 0x0112); 1 means upright
                orientation = 1 if animated else im.getexif().get(0x0112, 1)
                if size_out is not None:
                    # the size the user sees: orientations 5-8 swap the sides
                    size_out.append((height, width) if orientation in (5, 6, 7, 8) else (width, height))
                if max_side is not None and im.format == "JPEG" and max(width, height) > max_side:
                    # JPEG can decode at 1/2, 1/4, 1/8 scale directly: far less memory for photos
                    im.draft("RGB", _fit_size(width, height, max_side))
                # ImageSequence seeks frame by frame and Pillow composes each GIF/APNG frame onto
                # the previous ones (disposal, partial frames), so only one full-size frame is
                # ever decoded at a time; each is shrunk before the next is read.
                for frame in ImageSequence.Iterator(im):
                    if orientation != 1:
                        frame = ImageOps.exif_transpose(frame)
                    rgb = _shrink(_frame_to_rgb(frame), max_side)
                    budget.add(rgb)
                    frames.append(rgb)
                    if first_only or (stop is not None and len(frames) >= stop):
                        break
        except DsaeError:
            raise
        except Image.DecompressionBombError:
            raise DsaeError(f"{path} is too large to decode; downscale it first") from None
        except _DECODE_ERRORS as err:
            # len(frames) is the frame being decoded (or sought) when it failed
            where = f" at frame {len(frames)}" if animated else ""
            raise DsaeError(
                f"{path} is truncated or corrupt{where} ({_one_line(err)}); re-export or re-download it"
            ) from None
    return frames


def _not_an_image_message(path: Path) -> str:
    return f"{path} is not an image or video file that can be read; {_GIVE}"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


def _frame_to_rgb(frame: Image.Image) -> np.ndarray:
    """Convert one Pillow frame of any mode to RGB uint8 ``(H, W, 3)``, transparency over black."""
    mode = frame.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        # 16/32-bit greyscale: Pillow's convert() clips these to 0..255 instead of scaling,
        # which would turn a 16-bit PNG white; scale 16-bit range down to 8 bits ourselves.
        grey = np.asarray(frame, dtype=np.float64)
        if mode == "F":
            grey = np.clip(grey, 0, 255)  # float images have no fixed range; assume 8-bit values
        else:
            grey = np.clip(grey, 0, 65535) / 257.0
        grey8 = np.rint(grey).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if mode in _ALPHA_MODES or "transparency" in frame.info:
        rgba = np.asarray(frame.convert("RGBA"), dtype=np.uint16)
        alpha = rgba[:, :, 3:4]
        # premultiply = composite over black; +127 rounds the division
        return ((rgba[:, :, :3] * alpha + 127) // 255).astype(np.uint8)
    return np.asarray(frame.convert("RGB"), dtype=np.uint8).copy()


def _fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink(rgb: np.ndarray, max_side: int | None) -> np.ndarray:
    height, width = rgb.shape[:2]
    if max_side is None or max(width, height) <= max_side:
        return rgb
    size = _fit_size(width, height, max_side)
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
