"""``dsae train``: train a DSAE on Sprites, a .npz, a folder of clips (GIFs or videos) or a speech corpus, or resume a run."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer

from dsae_cli.commands.common import DeviceOption


def train_command(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="sprites | FILE.npz (from `dsae data sprites`) | DIR of clips (GIFs, MP4, WebM, MOV, AVI, ...) | speech:DIR (speaker/*.wav, LibriSpeech, TIMIT or VCTK tree). Default: the recipe's data."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New run folder (created; refused if it already holds a model)."),
    recipe: Optional[str] = typer.Option(None, "--recipe", "-r", help="sprites | sprites-wide | clips | paper | tiny | speech | tiny-speech, or FILE.toml. Default: clips for a folder of clips, speech for speech:DIR, else sprites.", show_default=False),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override a recipe field, repeatable: model.beta_z=16, train.lr=5e-4, train.2.minutes=5 (fields: docs/model.md, docs/training.md).", show_default=False),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Go on with the run in this folder where it stopped."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from this model's weights (run folder or .safetensors; fresh optimiser; only loss weights may change)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimiser steps of every stage (it stops at whichever of steps/minutes comes first)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.0, help="Wall-clock budget of the whole recipe (its stages keep their proportions); with --resume, of each stage still to run."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Sequences per step (under torchrun: all processes together)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Adam learning rate."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for init, data order and sampling (default 0)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 autocast on CUDA, else fp32) | fp32 | bf16 (CUDA, or a CPU with native bf16) | native (bf16 wherever the device has it natively, else fp32)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, help="Steps between validation passes (best/ is chosen on them)."),
    preview_every: Optional[int] = typer.Option(None, "--preview-every", min=0, help="Steps between loss.png/preview.gif refreshes (0: off)."),
    device: str = DeviceOption,
) -> None:
    """Train a model from a recipe. Example: dsae train --recipe sprites --out runs/sprites

    Your own clips: dsae train --data clips/ --out runs/mine --minutes 20

    Speech: dsae train --data speech:LibriSpeech/train-clean-100 --out runs/speech

    Several processes (CPU cores or GPUs), one run: torchrun --nproc_per_node=N -m dsae_cli train ... (--batch-size is their total).
    """
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        if (out is None) == (resume is None):
            raise DsaeError("give exactly one of --out RUN_DIR (new run) or --resume RUN_DIR (continue a run)")
        if init_from is not None and resume is not None:
            raise DsaeError("--init-from starts a new run; it cannot be combined with --resume")
        from dsae_cli.train.config import PRECISIONS  # no torch: --help stays light

        if precision is not None and precision not in PRECISIONS:
            raise DsaeError(f"unknown --precision {precision!r}; use {', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}")
        from dsae_cli.train.run import train

        summary = train(
            recipe, data, out, resume=resume, init_from=init_from, sets=set_ or [], minutes=minutes, log=_log,
            progress_factory=_rich_progress, steps=steps, batch_size=batch_size, lr=lr, seed=seed, precision=precision,
            checkpoint_every=checkpoint_every, eval_every=eval_every, preview_every=preview_every,
            device=device if resume is None or device != "auto" else None,
        )  # fmt: skip
        if summary.get("rank", 0) != 0:
            return  # under torchrun only rank 0 reports
        last = summary.get("last") or {}
        state = "stopped (Ctrl-C or SIGTERM) at" if summary.get("interrupted") else "finished at"
        _log(
            f"{state} step {summary.get('step', 0)} after {summary.get('elapsed_s', 0.0) / 60:.1f} min; loss {last.get('loss', float('nan')):.1f}, "
            f"best validation loss {summary.get('best_val', float('nan')):.1f}; model in {summary['run_dir']} (best: {summary['run_dir']}/best)"
        )


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, emoji=False).print(msg, markup=False)


@contextmanager
def _rich_progress(total: int, start: int):
    from dsae_cli.commands.common import progress_bar

    with progress_bar("train", total, start) as update:

        def step(done: int, out: dict, rate: float) -> None:
            info = f"loss {out['loss']:.1f} recon {out['recon']:.1f} kl_f {out['kl_f']:.1f} kl_z {out['kl_z']:.1f} {rate:.0f} seq/s"
            update(done, info=info)

        yield step
