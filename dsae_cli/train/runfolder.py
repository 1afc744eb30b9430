"""The files of a run folder, and keeping them whole across crashes and resumes.

A run directory holds:
  config.json + model.safetensors   the final (latest) model
  best/                             the model with the best validation loss so far
  state.pt                          weights, optimiser, RNG states (every process), data order and step, for --resume
  metrics.jsonl                     one JSON object per logged step (appended, never rewritten)
  train.json                        the training options, so --resume continues the same run
  loss.png, preview.gif             a loss curve and a reconstruction/swap preview, refreshed as it goes
                                    (speech: preview.png, spectrograms of originals, reconstructions, swaps)

Every file is written through :func:`~dsae_cli.io.files.atomic_path`; a killed run can leave only
temporary siblings (removed by :func:`remove_stale_temp_files`) and an unfinished last metrics line
(cut by :func:`repair_metrics`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path
from dsae_cli.train.config import TrainConfig


def repair_metrics(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so the next append starts on a line of its own."""
    path = Path(path)
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with atomic_path(path) as tmp:
            tmp.write_bytes(data[: data.rfind(b"\n") + 1])


# files the trainer writes through atomic_path; a crash can leave their temporary siblings
_RUN_FILES = ("state.pt", "model.safetensors", "config.json", "metrics.jsonl", "train.json", "loss.png", "preview.gif", "preview.png")


def remove_stale_temp_files(run_dir: Path) -> None:
    """Delete temporary files a killed run left half-written (the real files are intact), and finish a
    replacement of ``best/`` that a crash cut off."""
    from dsae_cli.checkpoint import recover_folder

    recover_folder(Path(run_dir) / "best")
    for folder in (Path(run_dir), Path(run_dir) / "best"):
        for name in _RUN_FILES:
            for tmp in folder.glob(f".{name}.*.tmp*"):
                tmp.unlink(missing_ok=True)


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash is ignored
    return rows


def save_train_config(run_dir: Path, cfg: TrainConfig, extra: dict) -> None:
    """train.json: the training options and ``extra`` (recipe, data, ...), so --resume continues the same run."""
    with atomic_path(run_dir / "train.json") as tmp:
        tmp.write_text(json.dumps({"train": dataclasses.asdict(cfg), **extra}, indent=2) + "\n")


def check_run_folder(run_dir: Path) -> None:
    """Refuse, with one clear line, a run folder whose train.json or config.json cannot be read."""
    for name, key in (("train.json", "train"), ("config.json", "config")):
        try:
            ok = isinstance(json.loads((run_dir / name).read_text()).get(key), dict)
        except (OSError, ValueError, UnicodeDecodeError, AttributeError):
            ok = False
        if not ok:
            raise DsaeError(f"{run_dir}/{name} is missing or damaged, so the run cannot be resumed; start a new run with --out")
