"""``dsae judge train``: train the judge classifier that ``dsae evaluate sprites`` (or ``shapes``) scores models with."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, progress_bar

app = typer.Typer(
    help="The judge: a sequence classifier of a benchmark's labels (Sprites: action, skin, pants, top, hair; "
    "Moving shapes: action, shape, colour, background) used to score models.",
    no_args_is_help=True,
)


@app.command("train")
def train(
    out: Path = typer.Option(Path("runs/judge"), "-o", "--out", help="Folder to write the judge to (config.json + model.safetensors)."),
    data: str = typer.Option("sprites", "--data", help="The benchmark whose labels it learns: sprites (9000 training sequences) | shapes (Moving shapes, 5536)."),
    minutes: float = typer.Option(0.0, "--minutes", min=0.0, help="Wall-clock budget; stops at whichever of epochs/minutes comes first (0: no limit)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Passes over the training sequences [default: 5 for sprites, 25 for shapes, whose small figures' shapes take longer].", show_default=False),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Sequences per step."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate (the protocol used 2e-4 with batch 128)."),
    seed: int = typer.Option(0, "--seed", help="Seed for init and data order."),
    preset: str = typer.Option("small", "--preset", help="small (16-32-64-128 convs, quick on a CPU) | protocol (the S3VAE/C-DSVAE judge's sizes)."),
    device: str = DeviceOption,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, hidden=True, help="Use only the first N train and test sequences (tests)."),
) -> None:
    """Train the judge on a benchmark's training split and report its accuracy on the real test sequences.

    Example: dsae judge train -o runs/judge  (then: dsae evaluate sprites --judge runs/judge);
    dsae judge train --data shapes -o runs/shapes-judge  (then: dsae evaluate shapes --model M --judge runs/shapes-judge)
    """
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        from dsae_cli.evaluate.benchmarks import BENCHMARKS
        from models.judge import BENCHMARK_HEADS, JUDGE_PRESETS, JudgeConfig

        if data not in BENCHMARKS:
            raise DsaeError(f"unknown --data {data!r}; use {' or '.join(BENCHMARKS)}")
        bench = BENCHMARKS[data]
        if preset not in JUDGE_PRESETS:
            raise DsaeError(f"unknown --preset {preset!r}; use {' or '.join(JUDGE_PRESETS)}")
        if out.exists() and not out.is_dir():
            raise DsaeError(f"--out {out} is a file; give a folder (it is created if missing)")
        if (out / "config.json").exists() or (out / "model.safetensors").exists():
            raise DsaeError(f"{out} already holds a judge or model; choose another --out or delete it first")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise DsaeError(f"folder {parent} for --out does not exist; create it first (mkdir -p {parent})")

        from dsae_cli.evaluate.judge import save_judge, train_judge
        from dsae_cli.runtime import resolve_device

        if epochs is None:
            epochs = 25 if data == "shapes" else 5
        dev = resolve_device(device)
        _say(f"rendering the {bench.title} training and test {bench.unit} ...")
        train_data = bench.split("train", limit)
        test_data = bench.split("test", limit)
        config = JudgeConfig(**JUDGE_PRESETS[preset], **BENCHMARK_HEADS[data])
        with progress_bar("judge") as progress:
            judge, summary = train_judge(
                train_data, test_data, config, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr,
                seed=seed, device=dev, log=_say, progress=progress,
            )  # fmt: skip
        options = dict(data=data, preset=preset, epochs=epochs, minutes=minutes, batch_size=batch_size, lr=lr, seed=seed, limit=limit)
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
