"""Helpers shared by the video commands: loading the model and inputs, writing outputs, default names."""

from __future__ import annotations

from pathlib import Path


def default_output(stem: str, suffix: str = ".gif", folder: Path = Path(".")) -> Path:
    """``stem.gif``, or ``stem-1.gif``, ... if that exists: a default name never overwrites a file."""
    path = folder / f"{stem}{suffix}"
    i = 1
    while path.exists():
        path = folder / f"{stem}-{i}{suffix}"
        i += 1
    return path


def setup(model_path, device: str, seed: int):
    """(model, device) with seeds set."""
    from dsae_cli.runtime import load_model_for, resolve_device, seed_everything

    seed_everything(seed)
    dev = resolve_device(device)
    return load_model_for(model_path, "video", dev), dev


def write_grid(path: Path, rows, labels=None, scale: int = 2) -> None:
    from dsae_cli.io import media

    media.write_png(path, media.upscale(media.make_grid(rows, labels=labels), scale))


def say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)
