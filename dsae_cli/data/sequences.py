"""Training data: the Sprites benchmark (built from the embedded LPC layers, or a saved .npz) or a
folder of animations, held in memory as uint8 and turned into float batches only when drawn.

Folder data: every GIF/PNG/APNG or video file (MP4, WebM, MOV, AVI, MKV, ...; or sub-folder of
frames) is read, resized to the model's frame
size (black-padded to square first) and cut into consecutive, non-overlapping windows of T frames;
the last window is aligned to the end so no frame is lost. Files shorter than T are skipped.

Validation: a fraction of the training *groups* (Sprites characters, or files of a folder) is held
out for model selection. Test characters of Sprites are dropped before anything else, so they are
never used for training or selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError

VIDEO_SUFFIXES = (".gif", ".png", ".apng", ".webp", ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
_VIDEO_FILES = VIDEO_SUFFIXES[4:]  # decoded by ffmpeg


@dataclass
class SequenceData:
    x: np.ndarray  # video: uint8 (N, T, H, W, 3); speech: float32 (N, T, n_bins)
    groups: np.ndarray  # (N,) int: character / file / speaker of each sequence (validation split unit)
    modality: str = "video"
    labels: dict = field(default_factory=dict)  # optional per-sequence label arrays
    source: str = ""

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, idx: np.ndarray) -> "SequenceData":
        return SequenceData(self.x[idx], self.groups[idx], self.modality, {k: v[idx] for k, v in self.labels.items()}, self.source)


def load_video_folder(folder: Path, seq_len: int, frame_size: int) -> SequenceData:
    from dsae_cli.io import media
    from dsae_cli.io.video import read_frames

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not files:
        raise DsaeError(
            f"{folder} holds no GIF/PNG animations or video files; point --data at a folder of clips (.gif, .mp4,"
            " .webm, .mov, .avi, ...), a .npz, or 'sprites'"
        )
    windows, groups = [], []
    skipped = 0
    for i, path in enumerate(files):
        # videos are decoded straight to about the model's size: a long HD clip then fits in memory
        video = path.suffix.lower() in _VIDEO_FILES
        frames = media.resize_frames(read_frames(path, max_side=frame_size) if video else read_frames(path), frame_size)
        if len(frames) < seq_len:
            skipped += 1
            continue
        w = media.sliding_windows(frames, seq_len, seq_len)
        windows.append(w)
        groups.append(np.full(len(w), i))
    if not windows:
        raise DsaeError(f"no animation in {folder} has at least {seq_len} frames; the model needs sequences of {seq_len}")
    return SequenceData(np.concatenate(windows), np.concatenate(groups), "video", {}, f"folder:{folder} ({skipped} short files skipped)")


def load_training_data(spec: str, seq_len: int = 8, frame_size: int = 64, progress=None) -> SequenceData:
    """``sprites`` | ``shapes`` | FILE.npz | DIR (of clips) -> the training sequences (never a
    benchmark's test split)."""
    from dsae_cli.data.shapes import is_shapes_npz, shapes_split
    from dsae_cli.data.sprites import sprites_split

    if spec == "sprites":
        return sprites_split("train", progress=progress)
    if spec == "shapes":
        return shapes_split("train", frames=seq_len)
    path = Path(spec)
    if not path.exists():
        raise DsaeError(f"--data {spec} not found; use 'sprites', a .npz from `dsae data sprites`, or a folder of clips (GIFs or videos)")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise DsaeError(f"--data {spec} is a file but not a .npz; use 'sprites', a .npz, or a folder of clips (GIFs or videos)")
        if is_shapes_npz(path):
            return shapes_split("train", frames=seq_len, npz=path)
        return sprites_split("train", npz=path)
    return load_video_folder(path, seq_len, frame_size)


#: the seed of the validation hold-out: fixed, not the run's --seed, so runs of several seeds are scored on one
#: split and ``dsae evaluate --split val`` scores every run on the groups it did not train on
HOLD_OUT_SEED = 0


def held_out_groups(groups, fraction: float = 0.05, seed: int = HOLD_OUT_SEED) -> np.ndarray:
    """The groups (e.g. Sprites characters) held out for validation, sorted: a seeded ``fraction`` of
    the distinct ``groups``, at least one when there are two or more, never all of them."""
    groups = np.unique(groups)
    n_val = int(round(fraction * len(groups)))
    n_val = min(max(n_val, 1), len(groups) - 1) if len(groups) >= 2 else 0
    return np.sort(np.random.RandomState(seed).permutation(groups)[:n_val])


def validation_split(data: SequenceData, fraction: float = 0.05, seed: int = HOLD_OUT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), holding out whole groups (:func:`held_out_groups`)."""
    is_val = np.isin(data.groups, held_out_groups(data.groups, fraction, seed))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def video_batch(x_uint8: np.ndarray, device: str = "cpu", pin_memory: bool = False):
    """uint8 (B, T, H, W, C) -> float (B, T, C, H, W) in [0, 1], channels-last underneath (no copy of layout).

    ``pin_memory`` (for a GPU ``device``) stages the uint8 batch in page-locked memory, so the copy runs
    asynchronously; the bytes travel as uint8, a quarter of the float size.
    """
    import torch

    t = torch.from_numpy(np.ascontiguousarray(x_uint8))
    t = (t.pin_memory() if pin_memory else t).to(device, non_blocking=True)
    return t.permute(0, 1, 4, 2, 3).float().div_(255.0)


def to_uint8_frames(x) -> np.ndarray:
    """The inverse of :func:`video_batch`: float (B, T, C, H, W) in [0, 1] -> uint8 (B, T, H, W, C)."""
    import torch

    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
