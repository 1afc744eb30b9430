"""Run-time choices shared by commands: device, seeds, the embedded default models."""

from __future__ import annotations

from pathlib import Path

from dsae_cli.errors import DsaeError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODELS = {"video": PRETRAINED_DIR / "sprites", "speech": PRETRAINED_DIR / "speech"}


def resolve_device(name: str) -> str:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    name = (name or "auto").lower()
    if name not in DEVICES:
        raise DsaeError(f"unknown --device {name!r}; use one of {', '.join(DEVICES)}")
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if name == "cuda" and not cuda:
        raise DsaeError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu (or auto)")
    if name == "mps" and not mps:
        raise DsaeError("--device mps was asked for but Apple MPS is not available; use --device cpu (or auto)")
    return name


def seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the system.

    A training step makes and frees tensors of tens of MB (a batch's decoded frames and their
    gradients). By default glibc serves every block over 32 MB with a fresh mmap and unmaps it when
    freed, so the kernel has to fault in and zero those pages again on every step. With mmap off for
    the process and a high trim threshold the heap grows to the step's peak once and is reused, at
    the cost of the memory a step peaks at staying held (docs/benchmarks.md measures both with
    `benchmarks/train_throughput.py --system-malloc`). The heap then stays at its peak until the
    process exits. Returns whether it applied (Linux with glibc only; elsewhere nothing changes)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4
    return bool(mallopt(M_MMAP_MAX, 0)) & bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1)) & bool(mallopt(M_TOP_PAD, 64 << 20))


def default_model_path(modality: str) -> Path:
    path = DEFAULT_MODELS[modality]
    if not (path / "config.json").is_file():
        raise DsaeError(
            f"this install has no embedded {modality} model; pass --model RUN_DIR (train one with `dsae train`)"
        )
    return path


def embedded_model_names() -> list[str]:
    """Names of the models that ship inside the package (``dsae_cli/pretrained/NAME/``)."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def model_path(model: Path | str | None, modality: str) -> Path:
    """Where ``--model`` points: a path that exists, else the embedded model of that name (``sprites``,
    ``speech``), else the path as given (loading it then says what is wrong);
    ``None``: the modality's embedded default."""
    if model is None:
        return default_model_path(modality)
    path = Path(model)
    if not path.exists() and str(model) in embedded_model_names():
        return PRETRAINED_DIR / str(model)
    return path


def load_model_for(model: Path | None, modality: str, device: str = "auto"):
    """Load ``--model`` (a path or an embedded model's name; default: the modality's embedded model)
    onto the resolved device."""
    from dsae_cli.checkpoint import load_model

    path = model_path(model, modality)
    return load_model(path, modality=modality, device=resolve_device(device))
