"""Checkpoints: ``config.json`` + ``model.safetensors`` in a directory, or one ``.safetensors`` file.

``config.json`` holds the model config, the modality, a format version and the library version.
A single-file bundle keeps the same JSON in the safetensors metadata under ``dsae``. Weights are
safetensors only (no pickle), so loading a checkpoint can never run code. Loading refuses unknown
format versions, foreign files and mismatched shapes with a message that says what to do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from dsae_cli import __version__
from dsae_cli.errors import DsaeError
from dsae_cli.fileio import atomic_path

FORMAT = "dsae-checkpoint"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def checkpoint_meta(model, extra: dict | None = None) -> dict:
    cfg = model.config
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "class": type(model).__name__,
        "modality": cfg.modality,
        "config": cfg.to_dict(),
    }
    if extra:
        meta.update(extra)
    return meta


def save_model(model, path: str | Path, extra: dict | None = None) -> Path:
    """Save to a directory (``config.json`` + ``model.safetensors``) or, for a ``.safetensors`` path, one file."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = checkpoint_meta(model, extra)
    if path.suffix == ".safetensors":
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"dsae": json.dumps(meta)})
        return path
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp))
    with atomic_path(path / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return path


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """Copy the model in folder ``src`` to folder ``dst``, replacing ``dst``'s model as a whole."""
    import shutil

    src, dst = Path(src), Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        with atomic_path(dst / name) as tmp:
            shutil.copyfile(src / name, tmp)
    return dst


def _read_meta(path: Path) -> tuple[dict, Path]:
    if path.is_dir():
        cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not cfg_file.is_file() or not weights.is_file():
            raise DsaeError(
                f"{path} is not a dsae checkpoint (it needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "pass a folder written by `dsae train` or a .safetensors bundle"
            )
        try:
            meta = json.loads(cfg_file.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise DsaeError(f"{cfg_file} is damaged ({err}); retrain or restore the checkpoint") from None
        return meta, weights
    if path.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                raw = (fh.metadata() or {}).get("dsae")
        except Exception as err:  # safetensors raises its own error types for junk files
            raise DsaeError(f"{path} is not a readable safetensors checkpoint ({err}); pass a dsae checkpoint") from None
        if raw is None:
            raise DsaeError(f"{path} is a safetensors file but not a dsae checkpoint (no dsae metadata)")
        try:
            return json.loads(raw), path
        except ValueError:
            raise DsaeError(f"{path} has damaged dsae metadata; retrain or restore the checkpoint") from None
    raise DsaeError(f"model {path} not found; pass a checkpoint folder or .safetensors file with --model")


def load_model(path: str | Path, modality: str | None = None, device: str = "cpu"):
    """Rebuild a model from a checkpoint; ``modality`` (if given) must match the checkpoint's."""
    import torch
    from safetensors.torch import load_file

    from models import DSAE, DSAEConfig

    path = Path(path)
    meta, weights_file = _read_meta(path)
    if isinstance(meta, dict) and meta.get("format") == "dsae-judge":
        raise DsaeError(f"{path} is a judge classifier (from `dsae judge train`), not a DSAE model; pass a model checkpoint with --model")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DsaeError(
            f"{path} is not a dsae checkpoint (format {meta.get('format') if isinstance(meta, dict) else '?'!r}); "
            "pass a folder written by `dsae train` or a .safetensors bundle"
        )
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DsaeError(
            f"{path} has checkpoint format version {version}, this dsae {__version__} reads version {FORMAT_VERSION}; "
            "upgrade dsae or retrain the model"
        )
    try:
        config = DSAEConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise DsaeError(f"{path} has an unusable model config ({err}); retrain or restore the checkpoint") from None
    if modality is not None and config.modality != modality:
        raise DsaeError(
            f"{path} is a {config.modality} model but this command needs a {modality} model; pass one with --model"
        )
    try:
        state = load_file(str(weights_file))
    except Exception as err:
        raise DsaeError(f"{weights_file} is damaged ({err}); retrain or restore the checkpoint") from None
    model = DSAE(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DsaeError(
            f"{path} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "the checkpoint is damaged or from another program"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise DsaeError(
                f"{path} does not match its config: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            )
        if not torch.isfinite(v).all():
            raise DsaeError(f"{path} holds non-finite weights in {k}; the checkpoint is damaged")
    model.load_state_dict(state)
    model.eval()
    model.checkpoint_meta = meta
    model.model_id = model_id(weights_file)
    return model.to(device)


def model_id(weights_file: Path) -> str:
    """A short content hash of the weights file: names exactly which model produced an output."""
    h = hashlib.sha256()
    with open(weights_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
