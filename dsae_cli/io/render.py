"""From decoded log spectrograms back to sound and pictures: fast Griffin-Lim, rendered in bounded
chunks over many threads (:func:`render_chunks`), and spectrogram pictures for previews and reports.

The spectrogram settings (``cfg``) are a :class:`~dsae_cli.io.audio.SpectrogramConfig`; magnitudes are
``(frames, n_bins)`` arrays (:func:`dsae_cli.io.audio.to_magnitude` turns the model's log features
into them). librosa and scipy are imported inside the functions that need them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dsae_cli.io.audio import SpectrogramConfig


# --------------------------------------------------------------------------------------------
# Griffin-Lim


def griffin_lim(
    magnitude: np.ndarray,
    cfg: SpectrogramConfig,
    n_iter: int = 32,
    seed: int | None = None,
    length: int | None = None,
    fft_workers: int | None = None,
) -> np.ndarray:
    """Audio whose STFT magnitude approximates ``magnitude`` (``(frames, n_bins)``), by fast Griffin-Lim.

    librosa's ``griffinlim`` with momentum 0.99 (Perraudin et al., 2013). ``seed=None`` starts from
    zero phase: deterministic, and independent of where a chunk starts, which makes chunked
    rendering exact (see :func:`render_chunks`); on speech it also converged further than random
    phase in our checks. An integer seed starts from random phase drawn from that seed. This is the
    only place that calls librosa.griffinlim: librosa 1.0 renames ``random_state`` to ``rng``.
    ``fft_workers`` threads compute each FFT (default: one per CPU).
    """
    import inspect

    import librosa
    import scipy.fft

    if np.iscomplexobj(magnitude):
        with scipy.fft.set_workers(fft_workers or cpu_count()):
            return _griffin_lim_from(np.ascontiguousarray(np.asarray(magnitude, np.complex64).T), cfg, n_iter, length)
    S = np.ascontiguousarray(np.asarray(magnitude, np.float32).T)
    kwargs = dict(
        n_iter=int(n_iter), hop_length=cfg.hop_length, win_length=cfg.win_length, n_fft=cfg.n_fft, window="hann",
        center=True, length=length, momentum=0.99, init=None if seed is None else "random",
    )  # fmt: skip
    if seed is not None:
        key = "rng" if "rng" in inspect.signature(librosa.griffinlim).parameters else "random_state"
        kwargs[key] = np.random.RandomState(seed % 2**32)
    with scipy.fft.set_workers(fft_workers or cpu_count()):  # librosa's FFTs go through scipy.fft
        return librosa.griffinlim(S, **kwargs).astype(np.float32)


def _griffin_lim_from(S: np.ndarray, cfg: SpectrogramConfig, n_iter: int, length: int | None, momentum: float = 0.99) -> np.ndarray:
    """librosa's fast Griffin-Lim loop, started from the phase of complex ``S`` ``(n_bins, frames)``."""
    import librosa

    stft_kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann", center=True)
    mag = np.abs(S).astype(np.float32)
    eps = np.finfo(np.float32).tiny
    angles = S.astype(np.complex64)  # magnitude times the initial phase
    tprev = None
    for _ in range(int(n_iter)):
        inverse = librosa.istft(angles, length=length, **stft_kw)
        rebuilt = librosa.stft(inverse, pad_mode="constant", **stft_kw)
        angles = rebuilt if tprev is None else rebuilt - (momentum / (1 + momentum)) * tprev
        angles = angles / (np.abs(angles) + eps) * mag
        tprev = rebuilt
    return librosa.istft(angles, length=length, **stft_kw).astype(np.float32)


def gl_context_frames(cfg: SpectrogramConfig, n_iter: int) -> int:
    """Frames of context each side of a chunk so its kept part equals a whole-signal Griffin-Lim.

    One iteration (an inverse STFT and an STFT) couples frames less than n_fft / hop apart, so after
    n_iter iterations and the final inverse a frame depends only on frames this many away.
    """
    reach = math.ceil(cfg.n_fft / cfg.hop_length)
    return (n_iter + 1) * reach + 1


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def render_chunks(
    n_samples: int,
    magnitude_of: Callable[[int, int], np.ndarray],
    cfg: SpectrogramConfig,
    n_iter: int = 32,
    seed: int | None = None,
    chunk_frames: int = 3000,
    workers: int | None = None,
) -> Iterator[tuple[np.ndarray, int]]:
    """Griffin-Lim over a long magnitude in bounded chunks; yields ``(audio_chunk, frames_done)`` in order.

    ``magnitude_of(a, b)`` returns magnitude frames ``[a, b)`` of a signal of ``n_samples`` samples
    (``cfg.n_frames(n_samples)`` frames in all); it is called from worker threads. Complex frames
    also give the initial phase (see :func:`griffin_lim`): when it depends only on the frame, chunks
    join exactly as with zero phase. Each chunk is
    rendered with context on both sides and only its middle is kept. With zero initial phase
    (``seed=None``) the chunks join exactly: the concatenation equals one Griffin-Lim over the whole
    magnitude. With a seed, each chunk starts from its own random phase and consecutive chunks are
    cross-faded (equal power) over 80 ms. The chunks add up to exactly ``n_samples`` samples.

    ``workers`` chunks (default: one per CPU) are rendered at once in threads: numpy and the FFTs
    release the GIL, so the cores share the work; at most ``workers`` chunks are in memory.
    """
    from concurrent.futures import ThreadPoolExecutor

    hop = cfg.hop_length
    total = cfg.n_frames(n_samples)
    ctx = gl_context_frames(cfg, n_iter)
    fade = 0 if seed is None else min(8, ctx)
    chunk_frames = max(chunk_frames, 1)
    starts = list(range(0, total, chunk_frames))
    workers = max(1, min(workers or cpu_count(), len(starts)))
    fft_workers = max(1, cpu_count() // workers)

    def render(i: int) -> tuple[np.ndarray, np.ndarray | None, int]:
        a = starts[i]
        b = min(a + chunk_frames, total)
        lo, hi = max(0, a - ctx), min(total, b + ctx)
        start = lo * hop  # sample of frame lo's centre
        end = n_samples if hi == total else (hi - 1) * hop
        audio = griffin_lim(magnitude_of(lo, hi), cfg, n_iter, None if seed is None else seed + 7919 * i, end - start, fft_workers)
        keep_lo, keep_hi = a * hop - start, (n_samples if b == total else b * hop) - start
        tail = audio[keep_hi : keep_hi + fade * hop].copy() if fade and b < total else None
        return audio[keep_lo:keep_hi].copy(), tail, b

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = [pool.submit(render, i) for i in range(min(workers, len(starts)))]
        tail = None  # seeded mode: the previous chunk's rendering of the next fade region
        for i in range(len(starts)):
            piece, next_tail, done = pending.pop(0).result()
            if i + workers < len(starts):
                pending.append(pool.submit(render, i + workers))
            if tail is not None:
                n = min(len(tail), len(piece))
                w = np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n).astype(np.float32)
                piece[:n] = np.sqrt(1 - w**2) * tail[:n] + w * piece[:n]
            tail = next_tail
            yield piece, done


# --------------------------------------------------------------------------------------------
# pictures

# anchor colours of a dark-to-bright map (black, purple, red, orange, pale yellow), roughly "magma"
_MAP_ANCHORS = np.array([(0, 0, 4), (59, 15, 112), (140, 41, 129), (222, 73, 104), (254, 159, 109), (252, 253, 191)], float)


def colour_map(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB ``(..., 3)`` along a dark-to-bright perceptual ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, float)), 0.0, 1.0)
    pos = np.linspace(0.0, 1.0, len(_MAP_ANCHORS))
    rgb = np.stack([np.interp(v, pos, _MAP_ANCHORS[:, c]) for c in range(3)], axis=-1)
    return (rgb + 0.5).astype(np.uint8)


def spectrogram_picture(
    panels: list[np.ndarray], labels: list[str], cfg: SpectrogramConfig, dynamic_range_db: float = 80.0, scale: int = 1
) -> np.ndarray:
    """Log-spectrogram panels ``(frames, n_bins)`` side by side, low frequencies at the bottom,
    each with its label above; one colour scale (the loudest bin down ``dynamic_range_db``) for all."""
    from PIL import Image, ImageDraw, ImageFont

    to_db = 20.0 / math.log(10.0)  # natural-log magnitude -> dB
    top = max(float(p.max()) for p in panels if p.size) * to_db if any(p.size for p in panels) else 0.0
    pad, head = 6, 16
    imgs = []
    for p in panels:
        norm = (np.asarray(p, float) * to_db - (top - dynamic_range_db)) / dynamic_range_db
        img = colour_map(norm.T[::-1])  # (bins, frames, 3), high frequencies first
        if scale > 1:
            img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)
        imgs.append(img)
    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # each panel's slot is wide enough for its label
    slots = [max(img.shape[1], int(probe.textbbox((0, 0), str(t), font=font)[2])) for img, t in zip(imgs, labels)]
    height = max(i.shape[0] for i in imgs)
    width = pad + sum(w + pad for w in slots)
    canvas = np.full((head + height + pad, width, 3), 255, np.uint8)
    x = pad
    for img, w in zip(imgs, slots):
        canvas[head : head + img.shape[0], x : x + img.shape[1]] = img
        x += w + pad
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    x = pad
    for w, text in zip(slots, labels):
        draw.text((x, 2), str(text), fill=(0, 0, 0), font=font)
        x += w + pad
    khz = cfg.sample_rate / 2000
    draw.text((pad + 2, head + 2), f"{khz:g} kHz", fill=(255, 255, 255), font=font)
    return np.asarray(picture).copy()
