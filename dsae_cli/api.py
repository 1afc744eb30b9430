"""The Python API, which is what the commands call.

    import dsae_cli as dsae

    model = dsae.load("sprites")
    a, b = dsae.read_video("examples/a.gif"), dsae.read_video("examples/b.gif")
    dsae.write_gif("swap.gif", model.swap(a, b))  # a's look doing b's movement

Video arguments may be frames (uint8 arrays (T, H, W, 3) of any size and length, as
:func:`read_video` gives them), a path (GIF, PNG/APNG, a video file such as MP4, WebM, MOV or AVI,
a folder of frames, or a ``.npz`` from ``dsae encode``) or a :class:`Clip` from :meth:`Model.clip`.
:func:`write_video` writes a GIF, an MP4 or a WebM, by the file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError


@dataclass
class Clip:
    """A video as the model sees it: its frames (model-sized), posterior parameters, and a note on
    what was done to the input (resized, a window of a longer clip)."""

    frames: np.ndarray
    latents: dict
    note: str = ""


class Model:
    """A trained DSAE and the device it runs on, with the operations of the commands."""

    def __init__(self, net, device: str = "cpu"):
        self.net, self.device = net, device

    @property
    def config(self):
        return self.net.config

    @property
    def model_id(self) -> str:
        return getattr(self.net, "model_id", "")

    def clip(self, video, start: int = 0, stride: int = 1, encode: bool = True) -> Clip:
        """Encode ``video`` (frames, a path or a Clip); inputs longer than the model's T use the frames
        ``start, start + stride, ...``. ``encode=False`` only reads the frames and fits them to the model
        (``latents`` stays empty); a path must then be an animation, not a ``.npz`` of ``dsae encode``."""
        from dsae_cli import manipulate

        if isinstance(video, Clip):
            return video
        if isinstance(video, (str, Path)):
            if not encode:
                inp = manipulate.load_video(Path(video), self.net, start, stride)
                return Clip(inp.frames, {}, inp.note)
            frames, lat, note = manipulate.latents_of(Path(video), self.net, start, stride, self.device)
            return Clip(frames, lat, note)
        inp = manipulate.fit_frames(np.asarray(video), self.net, start, stride, "the frames")
        return Clip(inp.frames, manipulate.encode_frames(self.net, inp.frames, self.device) if encode else {}, inp.note)

    def encode(self, video, start: int = 0, stride: int = 1) -> dict:
        """Posterior means and log-variances: ``f_mean``, ``f_logvar`` (f_dim), ``z_mean``, ``z_logvar`` (T, z_dim)."""
        return self.clip(video, start, stride).latents

    def swap(self, content, motion, sample: bool = False, seed: int = 0) -> np.ndarray:
        """``content``'s look (f) doing ``motion``'s movement (z_1:T): uint8 frames (T, H, W, 3)."""
        from dsae_cli import manipulate

        a, b = self.clip(content), self.clip(motion)
        return manipulate.swap_latents(self.net, a.latents, b.latents, sample=sample, seed=seed, device=self.device)

    def generate(self, fix: str = "content", n: int = 8, source=None, seed: int = 0, standard_prior: bool = False) -> np.ndarray:
        """``n`` new sequences (n, T, H, W, 3). ``fix="content"``: one f (``source``'s, else drawn from
        p(f)) with motions rolled out of the learned prior; ``"motion"``: one z_1:T, n contents; ``"none"``:
        both drawn. ``standard_prior`` draws f from the paper's N(0, I) instead of the fitted p(f)."""
        from dsae_cli import manipulate

        if fix == "none" and source is not None:
            raise DsaeError("fix='none' draws everything; drop the source or fix content or motion")
        f = z = None
        if source is not None:
            lat = self.clip(source).latents
            f, z = lat["f_mean"], lat["z_mean"]
        return manipulate.generate(self.net, fix, n, f=f, z=z, seed=seed, device=self.device, standard_prior=standard_prior)

    def reconstruct(self, video) -> np.ndarray:
        from dsae_cli import manipulate

        return manipulate.reconstruct(self.net, self.clip(video).frames, self.device)

    def predict(self, video, context: int = 4, seed: int = 0) -> np.ndarray:
        """Encode the first ``context`` frames and roll the learned prior forward for the rest."""
        from dsae_cli import manipulate

        return manipulate.predict(self.net, self.clip(video).frames, context, seed=seed, device=self.device)


def load(model: str | Path | None = None, modality: str | None = None, device: str = "auto", seed: int | None = None) -> Model:
    """A trained model: an embedded model's name (``sprites``, ``speech``), a run folder or a ``.safetensors``
    file; ``None`` is the modality's embedded model. ``modality`` (video or speech; default: speech for
    the model named ``speech``, else video) must be the model's."""
    from dsae_cli.runtime import load_model_for, resolve_device, seed_everything

    if seed is not None:
        seed_everything(seed)
    dev = resolve_device(device)
    if modality is None:
        modality = "speech" if model is not None and str(model) == "speech" else "video"
    return Model(load_model_for(Path(model) if model is not None else None, modality, dev), dev)


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a GIF, PNG/APNG, video file (MP4, WebM, MOV, AVI, MKV, ...) or folder of frames:
    uint8 (T, H, W, 3) at their own size (frames over 512 pixels are shrunk to 512)."""
    from dsae_cli.io.video import read_frames

    return read_frames(Path(path))


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """A looping GIF of uint8 frames (T, H, W, 3), or of a batch (N, T, H, W, 3) side by side; written atomically."""
    from dsae_cli.io import media

    frames = np.asarray(frames)
    if frames.ndim == 5:
        frames = media.grid_animation(list(frames))
    media.write_gif(Path(path), frames, fps=fps)
    return Path(path)


def write_video(path: str | Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Like :func:`write_gif`, in the format ``path`` names: ``.gif``, ``.mp4`` (H.264) or ``.webm`` (VP9)."""
    from dsae_cli.io import media

    frames = np.asarray(frames)
    if frames.ndim == 5:
        frames = media.grid_animation(list(frames))
    media.write_video(Path(path), frames, fps=fps)
    return Path(path)


def convert_voice(
    source: str | Path, to, output: str | Path, model: str | Path | None = None, iterations: int | None = None, device: str = "auto",
    progress=None, render: str = "source-filter", pitch: str = "target",
):  # fmt: skip
    """``source``'s words in the voice of ``to`` (a file or a list of files), written to ``output``
    (.wav or .flac) with the source's length and timing. Returns a summary (seconds, sample rate, ...).
    ``render`` "source-filter" (harmonics at the converted pitch) or "envelope"; ``pitch`` "target"
    (moved to the target's pitch range) or "source"."""
    from dsae_cli.runtime import load_model_for, resolve_device
    from dsae_cli.voice import convert_voice as convert

    dev = resolve_device(device)
    net = load_model_for(Path(model) if model is not None else None, "speech", dev)
    targets = [to] if isinstance(to, (str, Path)) else list(to)
    return convert(net, Path(source), [Path(t) for t in targets], Path(output), iterations, None, None, dev, progress, render=render, pitch=pitch)


def train(recipe: str | Path | None = None, data: str | None = None, out: str | Path | None = None, **options) -> dict:
    """Train ``recipe`` on ``data`` into the new folder ``out`` (see ``dsae train --help``); ``options``
    are ``sets=[...]``, ``minutes``, ``resume``, ``init_from`` and the training options (``steps``,
    ``batch_size``, ``lr``, ``seed``, ``device``, ...). Returns the last stage's summary."""
    from dsae_cli.train.run import train as run

    return run(recipe, data, out, **options)
