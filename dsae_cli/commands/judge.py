"""``dsae judge train``: train the judge classifier that ``dsae evaluate sprites`` scores models with."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, progress_bar

app = typer.Typer(help="The judge: a Sprites sequence classifier (action, skin, pants, top, hair) used to score models.", no_args_is_help=True)


@app.command("train")
def train(
    out: Path = typer.Option(Path("runs/judge"), "-o", "--out", help="Folder to write the judge to (config.json + model.safetensors)."),
    minutes: float = typer.Option(0.0, "--minutes", min=0.0, help="Wall-clock budget; stops at whichever of epochs/minutes comes first (0: no limit)."),
    epochs: int = typer.Option(5, "--epochs", min=1, help="Passes over the 9000 training sequences."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sequences per step."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate (the protocol used 2e-4 with batch 128)."),
    seed: int = typer.Option(0, "--seed", help="Seed for init and data order."),
    preset: str = typer.Option("small", "--preset", help="small (16-32-64-128 convs, quick on a CPU) | protocol (the S3VAE/C-DSVAE judge's sizes)."),
    device: str = DeviceOption,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, hidden=True, help="Use only the first N train and test sequences (tests)."),
) -> None:
    """Train the judge on the Sprites training characters and report its accuracy on the real test sequences.

    Example: dsae judge train -o runs/judge  (then: dsae evaluate sprites --judge runs/judge)
    """
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        from models.judge import JUDGE_PRESETS, JudgeConfig

        if preset not in JUDGE_PRESETS:
            raise DsaeError(f"unknown --preset {preset!r}; use {' or '.join(JUDGE_PRESETS)}")
        if out.exists() and not out.is_dir():
            raise DsaeError(f"--out {out} is a file; give a folder (it is created if missing)")
        if (out / "config.json").exists() or (out / "model.safetensors").exists():
            raise DsaeError(f"{out} already holds a judge or model; choose another --out or delete it first")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise DsaeError(f"folder {parent} for --out does not exist; create it first (mkdir -p {parent})")

        from dsae_cli.data.sprites import sprites_split
        from dsae_cli.evaluate.judge import save_judge, train_judge
        from dsae_cli.runtime import resolve_device

        dev = resolve_device(device)
        _say("rendering the Sprites training and test characters ...")
        train_data = sprites_split("train", limit)
        test_data = sprites_split("test", limit)
        config = JudgeConfig(**JUDGE_PRESETS[preset])
        with progress_bar("judge") as progress:
            judge, summary = train_judge(
                train_data, test_data, config, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr,
                seed=seed, device=dev, log=_say, progress=progress,
            )  # fmt: skip
        options = dict(preset=preset, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr, seed=seed, limit=limit)
        training = {**options, **{k: v for k, v in summary.items() if k != "test_accuracy"}}
        save_judge(judge, out, extra={"training": training, "test_accuracy": summary["test_accuracy"]})
        acc = summary["test_accuracy"]
        worst = min(acc.values())
        _say(
            f"trained {summary['steps']} steps ({summary['epochs_run']} epochs, {summary['elapsed_s'] / 60:.1f} min, "
            f"{summary['seconds_per_step']:.3f} s/step) on {summary['n_train']} sequences; accuracy on the {summary['n_test']} real "
            "test sequences: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in acc.items()) + f"; judge in {out}"
        )
        if worst < 0.99:
            _say(f"note: the weakest head is at {100 * worst:.2f}% (< 99%); train longer (--epochs) before judging models with it")


def _say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)
