"""Video files (MP4, WebM, MOV, AVI, MKV, ...) through the ffmpeg that ``imageio-ffmpeg`` ships in its wheel.

:func:`decode` streams a video's frames out of ffmpeg as RGB, shrunk by ffmpeg itself so a full-size
frame never crosses the pipe; :func:`encode` writes frames as an MP4 (H.264, yuv420p) or a WebM
(VP9). ffmpeg runs as a subprocess (``imageio_ffmpeg`` only locates the executable, and is imported
when a video is first read or written, so ``dsae --help`` stays cheap).

Everything the user can fix (no ffmpeg, a missing codec, a broken, truncated or non-video file) is a
one-line :class:`~dsae_cli.errors.DsaeError`. Decoding is strict: any error ffmpeg reports while
reading (a truncated or corrupt file decodes partly, with errors) fails the read rather than giving
fewer or damaged frames.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError

__all__ = ["READ_SUFFIXES", "WRITE_SUFFIXES", "ffmpeg_exe", "decode", "encode"]

# Video files read through ffmpeg (compared lower-case).
READ_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")

# suffix -> (ffmpeg muxer, encoder and its options). yuv420p is what every player and browser
# plays; it needs even frame sides, which encode() ensures.
WRITE_SUFFIXES = {
    ".mp4": ("mp4", ["-c:v", "libx264", "-preset", "medium", "-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]),
    ".webm": ("webm", ["-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-deadline", "good", "-cpu-used", "4", "-pix_fmt", "yuv420p"]),
}

_INSTALL = "pip install imageio-ffmpeg (it ships ffmpeg)"
_CONVERT = "ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4"


def ffmpeg_exe(path: Path, doing: str) -> str:
    """The ffmpeg executable (imageio-ffmpeg's own, or the one ``IMAGEIO_FFMPEG_EXE`` names)."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise DsaeError(f"{doing} {path} needs ffmpeg, which is not installed; {_INSTALL}") from None
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise DsaeError(f"{doing} {path} needs ffmpeg, and none was found; {_INSTALL}") from None


def decode(path: Path, max_side: int | None, budget, stop: int | None = None) -> list[np.ndarray]:
    """The RGB frames ``(H, W, 3)`` uint8 of the first video stream of ``path``, in order.

    A frame whose longer side exceeds ``max_side`` is shrunk to it by ffmpeg (area averaging,
    aspect kept). ``budget.add(frame)`` is called on every frame (it raises to stop the read);
    ``stop`` reads only the first ``stop`` frames. Rotated phone videos come out upright.
    """
    exe = ffmpeg_exe(path, "reading")
    cmd = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path), "-map", "0:v:0", "-an", "-sn", "-dn"]
    if max_side is not None:
        box = f"'min({max_side},iw)':'min({max_side},ih)'"
        cmd += ["-vf", f"scale={box}:force_original_aspect_ratio=decrease:flags=area"]
    if stop is not None:
        cmd += ["-frames:v", str(int(stop))]
    # PPM frames carry their own size, so nothing has to be parsed from ffmpeg's log
    cmd += ["-f", "image2pipe", "-c:v", "ppm", "-"]
    frames: list[np.ndarray] = []
    broken = ""
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log)
        except OSError as err:
            raise DsaeError(f"ffmpeg ({exe}) could not be started ({err.strerror or err}); {_INSTALL}") from None
        ended = False
        try:
            while (frame := _read_ppm(proc.stdout)) is not None:
                budget.add(frame)  # may raise: the read stops, ffmpeg is killed
                frames.append(frame)
            ended = True
        except _BadStream as err:
            broken, ended = str(err), True
        finally:
            if not ended:
                proc.kill()
            proc.stdout.close()
            code = proc.wait()
        log.seek(0)
        errors = log.read().decode("utf-8", "replace")
    if code != 0 or errors.strip():
        raise DsaeError(_decode_error(path, errors, code, bool(frames)))
    if broken:
        raise DsaeError(f"{path} could not be decoded (ffmpeg gave {broken}); check that it plays, or convert it: {_CONVERT}")
    if not frames:
        raise DsaeError(f"{path} has no video frames; give a video with at least one frame")
    return frames


class _BadStream(Exception):
    pass


def _read_ppm(stream) -> np.ndarray | None:
    """One binary PPM frame ("P6 W H 255" then W*H*3 bytes) from ``stream``; None at the end."""
    tokens: list[bytes] = []
    token = b""
    while len(tokens) < 4:
        byte = stream.read(1)
        if not byte:
            if not tokens and not token:
                return None
            raise _BadStream("a cut-off frame header")
        if byte.isspace():
            if token:
                tokens.append(token)
                token = b""
        else:
            token += byte
    if tokens[0] != b"P6" or not (tokens[1].isdigit() and tokens[2].isdigit()) or tokens[3] != b"255":
        raise _BadStream(f"an unexpected frame header {b' '.join(tokens)[:40]!r}")
    width, height = int(tokens[1]), int(tokens[2])
    size = width * height * 3
    data = stream.read(size)
    if len(data) != size:
        raise _BadStream("a cut-off frame")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()


# "[h264 @ 0x55d9...] " and "[in#0/mov,mp4 @ 0x...] " prefixes say which part of ffmpeg spoke
_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)+")


def _error_lines(errors: str) -> list[str]:
    lines = [_PREFIX.sub("", line).strip() for line in errors.splitlines()]
    return [line for line in lines if line]


def _decode_error(path: Path, errors: str, code: int, got_frames: bool) -> str:
    lines = _error_lines(errors)
    text = " ".join(lines)
    first = _shorten(lines[0] if lines else f"ffmpeg exited with status {code}")
    if "matches no streams" in text:
        return f"{path} has no video stream; give a video file, a GIF or a folder of frame images"
    if re.search(r"(decoder|codec)[^.]*not found|unknown (decoder|codec)|no decoder", text, re.IGNORECASE):
        return f"{path} uses a codec this ffmpeg cannot decode ({first}); convert it: {_CONVERT}"
    if not got_frames and ("Invalid data found" in text or "moov atom not found" in text or "Error opening input" in text):
        return (
            f"{path} is not a video file ffmpeg can read, or it is truncated ({first}); check that it plays,"
            f" or re-export or re-download it"
        )
    return (
        f"{path} is truncated or corrupt (ffmpeg: {first}); re-export or re-download it (re-encoding keeps"
        f" what still plays: {_CONVERT})"
    )


def _shorten(line: str) -> str:
    line = line.rstrip(". ")
    return line if len(line) <= 160 else line[:157] + "..."


def encode(path: Path, frames: np.ndarray, fps: float, name: Path | None = None) -> None:
    """Write uint8 frames ``(N, H, W, 3)`` to ``path`` (an MP4 or a WebM, from its suffix) at ``fps``.

    ``path`` is written as it is (the caller makes it atomic; ``name``, the file the user asked
    for, is what messages call it). Odd frame sides are padded by repeating the last row or
    column, since yuv420p needs even sides.
    """
    name = Path(name or path)
    muxer, codec = WRITE_SUFFIXES[name.suffix.lower()]
    exe = ffmpeg_exe(name, "writing")
    n, height, width, _ = frames.shape
    if height % 2 or width % 2:
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        n, height, width, _ = frames.shape
    cmd = [
        exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", f"{float(fps):g}", "-i", "-",
        *codec, "-r", f"{float(fps):g}", "-f", muxer, str(path),
    ]  # fmt: skip
    try:
        done = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
    except OSError as err:
        raise DsaeError(f"ffmpeg ({exe}) could not be started ({err.strerror or err}); {_INSTALL}") from None
    if done.returncode != 0:
        lines = _error_lines(done.stderr.decode("utf-8", "replace"))
        text = " ".join(lines)
        first = _shorten(lines[0] if lines else f"ffmpeg exited with status {done.returncode}")
        encoder = codec[1]
        if re.search(r"unknown encoder|encoder[^.]*not found|no encoder", text, re.IGNORECASE):
            raise DsaeError(
                f"this ffmpeg ({exe}) has no {encoder} encoder to write {name}; {_INSTALL}, or write a .gif"
            )
        raise DsaeError(f"{name} could not be written (ffmpeg: {first}); check the disk space, or write a .gif")
