"""Video manipulation behind ``encode``, ``swap``, ``generate``, ``reconstruct`` and ``predict``.

Inputs are GIF/PNG/APNG files, video files (MP4, WebM, MOV, AVI, ...) or folders of frames. Frames
of another size are black-padded to square and resized to the model's frame size; a sequence longer
than the model's T is cut to the window ``frames[start : start + T*stride : stride]``
(``--start``/``--stride``); a shorter one is an error. Outputs are uint8 frame arrays; the commands
write them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError

LATENTS_FORMAT = "dsae-latents"
LATENTS_VERSION = 1


@dataclass
class VideoInput:
    frames: np.ndarray  # uint8 (T, size, size, 3), what the model sees
    note: str  # what was done to the input (resized, window), empty if nothing


def load_video(path: Path, model, start: int = 0, stride: int = 1) -> VideoInput:
    """The model's window of T frames of the animation ``path``. Only the frames up to the window's
    last are decoded (plus one, to tell whether the clip goes on), so a long video costs no more."""
    from dsae_cli.io.video import read_frames

    if start < 0 or stride < 1:
        raise DsaeError("--start must be 0 or more and --stride 1 or more")
    needed = start + (model.config.seq_len - 1) * stride + 1
    raw = read_frames(path, stop=needed + 1)
    longer = len(raw) > needed
    return fit_frames(raw[:needed], model, start, stride, str(path), longer=longer)


def fit_frames(raw: np.ndarray, model, start: int = 0, stride: int = 1, what: str = "the frames", longer: bool = False) -> VideoInput:
    """Frames of any size and length, resized to the model's and cut to its window of T frames
    (``longer``: ``raw`` is the start of a longer clip, whose end was not read)."""
    from dsae_cli.io import media

    cfg = model.config
    if start < 0 or stride < 1:
        raise DsaeError("start must be 0 or more and stride 1 or more")
    if raw.ndim != 4 or raw.shape[-1] != 3:
        raise DsaeError(f"{what}: expected frames of shape (T, H, W, 3), not {tuple(raw.shape)}")
    raw = np.asarray(raw, np.uint8)
    path = what
    notes = []
    if raw.shape[1:3] != (cfg.frame_size, cfg.frame_size):
        notes.append(f"resized {raw.shape[2]}x{raw.shape[1]} -> {cfg.frame_size}x{cfg.frame_size}")
    frames = media.resize_frames(raw, cfg.frame_size)
    if len(frames) < start + 1 + (cfg.seq_len - 1) * stride:
        raise DsaeError(
            f"{path} has {len(frames)} frame{'s' if len(frames) != 1 else ''} but the model needs {cfg.seq_len}"
            + (f" from frame {start} with stride {stride}" if start or stride > 1 else "")
            + "; give a longer animation"
            + (" or a smaller --start/--stride" if start or stride > 1 else "")
        )
    window = media.select_window(frames, cfg.seq_len, start, stride)
    if len(frames) > cfg.seq_len or longer:
        of = "a longer clip" if longer else f"{len(frames)}"
        notes.append(f"used frames {start}..{start + (cfg.seq_len - 1) * stride} (stride {stride}) of {of}")
    return VideoInput(window, "; ".join(notes))


def to_tensor(frames: np.ndarray, device: str = "cpu"):
    from dsae_cli.data.sequences import video_batch

    return video_batch(frames[None], device)


def to_frames(x) -> np.ndarray:
    from dsae_cli.data.sequences import to_uint8_frames

    return to_uint8_frames(x)


# ------------------------------------------------------------------------------ latents files
def encode_frames(model, frames: np.ndarray, device: str = "cpu") -> dict:
    import torch

    with torch.no_grad():
        post = model.encode(to_tensor(frames, device))
    return {
        "f_mean": post.f_mean[0].cpu().numpy(),
        "f_logvar": post.f_logvar[0].cpu().numpy(),
        "z_mean": post.z_mean[0].cpu().numpy(),
        "z_logvar": post.z_logvar[0].cpu().numpy(),
    }


def save_latents(path: Path, latents: dict, model, source: str) -> None:
    from dsae_cli.io.files import atomic_path

    meta = {"format": LATENTS_FORMAT, "format_version": LATENTS_VERSION, "model_id": model.model_id, "source": source}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **{k: v.astype(np.float32) for k, v in latents.items()})


def load_latents(path: Path, model) -> dict:
    """Read a file written by ``dsae encode``; it must come from the same model."""
    path = Path(path)
    if not path.is_file():
        raise DsaeError(f"latents file {path} not found; write one with `dsae encode x.gif -o {path.name}`")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            lat = {k: np.asarray(z[k], np.float32) for k in ("f_mean", "f_logvar", "z_mean", "z_logvar")}
    except Exception:
        raise DsaeError(f"{path} is not a latents file from `dsae encode`; re-encode the animation") from None
    if meta.get("format") != LATENTS_FORMAT or meta.get("format_version") != LATENTS_VERSION:
        raise DsaeError(f"{path} has an unknown latents format {meta.get('format')} v{meta.get('format_version')}; re-encode it")
    cfg = model.config
    if meta.get("model_id") != model.model_id or lat["f_mean"].shape != (cfg.f_dim,) or lat["z_mean"].shape[1:] != (cfg.z_dim,):
        raise DsaeError(f"{path} was encoded by another model ({meta.get('model_id')}); re-encode with this model or pass its --model")
    return lat


# ------------------------------------------------------------------------------ operations
def decode_latents(model, f, z, device: str = "cpu") -> np.ndarray:
    import torch

    with torch.no_grad():
        return to_frames(model.decode(torch.as_tensor(f, device=device), torch.as_tensor(z, device=device)))


def generate(model, fix: str, n: int, f=None, z=None, seed: int = 0, device: str = "cpu", standard_prior: bool = False) -> np.ndarray:
    """N sequences (N, T, H, W, 3). ``fix='content'`` shares one f, ``'motion'`` one z_1:T, ``'none'`` neither.

    A shared f or z_1:T is taken from ``f``/``z`` (e.g. an encoded input) or drawn once from the prior;
    f is drawn from the model's p(f) (the fitted Gaussian, or N(0, I) with ``standard_prior``).
    """
    import torch

    g = torch.Generator(device="cpu").manual_seed(seed)
    T = model.config.seq_len
    with torch.no_grad():
        if fix == "content":
            f1 = torch.as_tensor(f, dtype=torch.float32)[None] if f is not None else model.sample_f(1, generator=g, standard=standard_prior).cpu()
            fs = f1.expand(n, -1)
            zs = _sample_z(model, n, T, g)
        elif fix == "motion":
            z1 = torch.as_tensor(z, dtype=torch.float32)[None] if z is not None else _sample_z(model, 1, T, g)
            zs = z1.expand(n, -1, -1)
            fs = model.sample_f(n, generator=g, standard=standard_prior).cpu()  # p(f): N(0, I), or the fitted Gaussian
        elif fix == "none":
            fs = model.sample_f(n, generator=g, standard=standard_prior).cpu()
            zs = _sample_z(model, n, T, g)
        else:
            raise DsaeError(f"unknown --fix {fix!r}; use content, motion or none")
        return to_frames(model.decode(fs.to(device), zs.to(device)))


def _sample_z(model, n: int, T: int, g):
    import torch

    # the prior is sampled on the CPU generator, so a seed gives the same motion on every device
    cpu = next(model.parameters()).device.type == "cpu"
    if cpu:
        return model.sample_z(n, T, generator=g)
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
    return model.sample_z(n, T).cpu()


def reconstruct(model, frames: np.ndarray, device: str = "cpu") -> np.ndarray:
    import torch

    with torch.no_grad():
        return to_frames(model.reconstruct(to_tensor(frames, device)))[0]


def predict(model, frames: np.ndarray, context: int, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Encode the first ``context`` frames, roll the learned prior forward for the rest, decode all T."""
    import torch

    T = len(frames)
    if not 1 <= context < T:
        raise DsaeError(f"--context must be between 1 and {T - 1} (the model sees {T} frames)")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = model.predict(to_tensor(frames, device), context, T - context, generator=g if device == "cpu" else None)
    return to_frames(x)[0]


def latents_of(path: Path, model, start: int = 0, stride: int = 1, device: str = "cpu") -> tuple[np.ndarray, dict, str]:
    """(frames to show, posterior parameters, note) of an animation or of a ``dsae encode`` .npz file."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        lat = load_latents(path, model)
        frames = decode_latents(model, lat["f_mean"][None], lat["z_mean"][None], device)[0]
        return frames, lat, "latents file: shown as its reconstruction"
    inp = load_video(path, model, start, stride)
    return inp.frames, encode_frames(model, inp.frames, device), inp.note


def swap_latents(model, lat_content: dict, lat_motion: dict, sample: bool = False, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Decode f of ``lat_content`` with z_1:T of ``lat_motion`` (posterior means, or samples with ``sample``)."""
    rng = np.random.RandomState(seed)

    def pick(mean, logvar):
        return mean + np.exp(0.5 * logvar) * rng.standard_normal(mean.shape).astype(np.float32) if sample else mean

    f = pick(lat_content["f_mean"], lat_content["f_logvar"])
    z = pick(lat_motion["z_mean"], lat_motion["z_logvar"])
    return decode_latents(model, f[None], z[None], device)[0]
