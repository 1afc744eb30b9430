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
from dsae_cli.io.files import atomic_path

FORMAT = "dsae-checkpoint"
JUDGE_FORMAT = "dsae-judge"
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
    """Save a DSAE to a folder (``config.json`` + ``model.safetensors``) or, for a ``.safetensors`` path, one file."""
    return write_checkpoint(model.state_dict(), checkpoint_meta(model, extra), path)


def write_checkpoint(state: dict, meta: dict, path: str | Path) -> Path:
    """Write weights and their metadata so that a crash never pairs one save's weights with another's config.

    The metadata travels inside the safetensors file too, with a save id that ``config.json`` repeats,
    so a reader can tell when the two come from different saves. Folders are written by :func:`place_model`.
    """
    import uuid

    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    meta = {**meta, "save_id": uuid.uuid4().hex[:16]}
    packed = {"dsae": json.dumps(meta)}

    def write_weights(target: Path) -> None:
        save_file(tensors, str(target), metadata=packed)

    if path.suffix == ".safetensors":
        with atomic_path(path) as tmp:
            write_weights(tmp)
        return path

    return place_model(path, {WEIGHTS_NAME: write_weights, CONFIG_NAME: lambda target: target.write_text(json.dumps(meta, indent=2) + "\n")})


def place_model(path: Path, writers: dict) -> Path:
    """Write a model's files (``writers``: file name -> ``write(target)``, weights first) into ``path``: a
    folder that holds nothing but a model is replaced as a whole; in any other folder (a run folder)
    each file is replaced atomically and the other files are kept."""
    if model_only(path):
        return replace_folder(path, lambda folder: [write(folder / name) for name, write in writers.items()])
    for name, write in writers.items():
        with atomic_path(path / name) as tmp:
            write(tmp)
    return path


def model_only(path: Path) -> bool:
    """Whether ``path`` is missing or holds nothing but a model (so it may be replaced as a whole folder)."""
    recover_folder(path)
    return not path.exists() or (path.is_dir() and {p.name for p in path.iterdir()} <= {CONFIG_NAME, WEIGHTS_NAME})


def recover_folder(path: Path) -> None:
    """Finish a folder replacement that a crash cut off: put the old folder back if the new one never
    arrived, and remove what is left over."""
    import shutil

    path = Path(path)
    if not path.parent.is_dir():
        return
    for old in sorted(path.parent.glob(f".{path.name}.*.old")):
        if not path.exists() and (old / path.name).is_dir():
            (old / path.name).rename(path)
        shutil.rmtree(old, ignore_errors=True)
    for new in path.parent.glob(f".{path.name}.*.new"):
        shutil.rmtree(new, ignore_errors=True)


def replace_folder(path: Path, fill) -> Path:
    """Make ``path`` a folder that ``fill(folder)`` wrote: written beside it, then renamed over it."""
    import os
    import shutil
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent))
    try:
        fill(new)
        os.chmod(new, 0o755)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.rename(path, old / path.name)
            os.rename(new, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(new, path)
    finally:
        shutil.rmtree(new, ignore_errors=True)
    return path


def copy_model(src: str | Path, dst: str | Path) -> Path:
    """Copy the model folder ``src`` to ``dst`` byte for byte (the same model id), replacing ``dst``'s model
    as a whole (a run folder's model file by file, as :func:`write_checkpoint` does)."""
    import shutil

    src, dst = Path(src), Path(dst)
    read_checkpoint(src, FORMAT, "model")  # refuse a damaged source before anything is replaced

    return place_model(dst, {name: (lambda target, name=name: shutil.copyfile(src / name, target)) for name in (WEIGHTS_NAME, CONFIG_NAME)})


def read_checkpoint(path: str | Path, fmt: str, what: str = "model") -> tuple[dict, dict]:
    """``(metadata, weights)`` of a checkpoint folder or ``.safetensors`` file of format ``fmt``
    (``dsae-checkpoint`` or ``dsae-judge``), refusing foreign, damaged and non-finite ones in one line."""
    import torch
    from safetensors.torch import load_file

    path = Path(path)
    meta, weights_file = _read_meta(path, what)
    kind = meta.get("format") if isinstance(meta, dict) else None
    if kind != fmt:
        if kind == JUDGE_FORMAT:
            raise DsaeError(f"{path} is a judge classifier (from `dsae judge train`), not a DSAE model; pass a model checkpoint with --model")
        if kind == FORMAT:
            raise DsaeError(f"{path} is a DSAE model, not a judge; pass it with --model and a judge folder (from `dsae judge train`) with --judge")
        raise DsaeError(f"{path} is not a dsae {'checkpoint' if fmt == FORMAT else what} (format {kind!r}); pass a folder written by `dsae {'judge ' if fmt == JUDGE_FORMAT else ''}train`")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise DsaeError(
            f"{path} has {what} format version {version}, this dsae {__version__} reads version {FORMAT_VERSION}; "
            f"upgrade dsae or retrain the {what}"
        )
    try:
        state = load_file(str(weights_file))
    except Exception as err:  # safetensors raises its own error types for junk files
        raise DsaeError(f"{weights_file} is damaged ({err}); retrain or restore the {what}") from None
    for k, v in state.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise DsaeError(f"{path} holds non-finite weights in {k}; the {what} is damaged")
    if Path(path).is_dir():
        packed = _packed_meta(weights_file)
        if packed is not None and packed.get("save_id") and packed.get("save_id") != meta.get("save_id"):
            raise DsaeError(
                f"{path}: config.json and model.safetensors come from different saves (a write was cut off); "
                f"restore the {what} or train it again"
            )
    meta["_id"] = model_id(weights_file)
    return meta, state


def check_weights(path: Path, module, state: dict, what: str = "model") -> None:
    """Refuse weights that do not fit ``module`` (a checkpoint damaged or from another program)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise DsaeError(
            f"{path} does not match its config (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            f"the {what} is damaged or from another program"
        )
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise DsaeError(f"{path} does not match its config: {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")


def _read_meta(path: Path, what: str = "model") -> tuple[dict, Path]:
    if path.is_dir():
        cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
        if not cfg_file.is_file() or not weights.is_file():
            raise DsaeError(
                f"{path} is not a dsae checkpoint (it needs {CONFIG_NAME} and {WEIGHTS_NAME}); "
                "pass a folder written by `dsae train`, `dsae judge train` or a .safetensors bundle"
            )
        try:
            meta = json.loads(cfg_file.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise DsaeError(f"{cfg_file} is damaged ({err}); retrain or restore the {what}") from None
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


def _packed_meta(weights: Path) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as fh:
            raw = (fh.metadata() or {}).get("dsae")
        return json.loads(raw) if raw else None
    except Exception:  # a damaged file: the weights reader says so
        return None


def load_model(path: str | Path, modality: str | None = None, device: str = "cpu"):
    """Rebuild a model from a checkpoint; ``modality`` (if given) must match the checkpoint's."""
    from models import DSAE, DSAEConfig

    def check(config) -> None:
        if modality is not None and config.modality != modality:
            raise DsaeError(
                f"{path} is a {config.modality} model but this command needs a {modality} model; pass one with --model"
            )

    path = Path(path)
    return load_module(path, FORMAT, "model", DSAEConfig, DSAE, "retrain or restore the checkpoint", device, check)


def load_module(path: Path, fmt: str, what: str, config_cls, module_cls, fix: str, device: str = "cpu", check=None):
    """Rebuild the ``module_cls(config)`` a checkpoint of format ``fmt`` holds (a ``what``: model or judge),
    in eval mode on ``device``, with its metadata as ``checkpoint_meta`` and its id as ``<what>_id``.

    A config ``config_cls.from_dict`` cannot read is refused with ``fix`` (what to do about it);
    ``check(config)`` may refuse the config before the module is built."""
    meta, state = read_checkpoint(path, fmt, what)
    ident = meta.pop("_id")
    try:
        config = config_cls.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise DsaeError(f"{path} has an unusable {what} config ({err}); {fix}") from None
    if check is not None:
        check(config)
    module = module_cls(config)
    check_weights(path, module, state, what)
    module.load_state_dict(state)
    module.eval()
    module.checkpoint_meta = meta
    setattr(module, f"{what}_id", ident)
    return module.to(device)


def model_id(weights_file: Path) -> str:
    """A short content hash of the weights file: names exactly which model produced an output."""
    h = hashlib.sha256()
    with open(weights_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
