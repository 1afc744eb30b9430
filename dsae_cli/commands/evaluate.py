"""``dsae evaluate ...``: score models as the papers do.

``sprites``: the judge protocol of S3VAE / C-DSVAE and the DSAE paper's table (below); ``shapes``:
the same figures on the Moving shapes benchmark;
``speech``: speaker verification (registered from ``evaluate_speech``). Typer and the shared
options only at module level; torch and the model load inside the bodies.
"""

from pathlib import Path
from typing import List, Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption, progress_bar

app = typer.Typer(help="Evaluate models as the papers do.", no_args_is_help=True)


@app.command("sprites")
def sprites_command(
    model: Optional[Path] = ModelOption,
    judge: Optional[Path] = typer.Option(None, "--judge", "-j", help="Judge folder from `dsae judge train`; default: the embedded judge.", show_default=False),
    repeats: int = typer.Option(3, "--repeats", "-r", min=1, help="Passes with fresh prior samples; each figure is their mean and std."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of Markdown tables."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also write the judge's class probabilities over time (PNG) into this folder.", show_default=False),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sequences per model/judge call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prior samples (the swap pairs are fixed)."),
    split: str = typer.Option("test", "--split", help="test: the 296 test characters (report figures once) | val: the 50 training characters that `dsae train` holds out with its default seed and split (choose on these)."),
    device: str = DeviceOption,
    swap_rounds: int = typer.Option(1, "--swap-rounds", min=1, help="Sets of swap pairs (each sequence with a new partner in each); the swap figures are their mean and std. More sets tell close models apart on a small split."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, hidden=True, help="Only the first N test sequences (tests)."),
) -> None:
    """Score a video model on the Sprites test (2664 sequences) or validation (450) split with the judge classifier.

    Action test (the S3VAE / C-DSVAE protocol: Acc, IS, H(y|x), H(y) with f drawn from N(0, I), and
    again from the fitted p(f) when the model has one), static test
    (f kept, z_1:T resampled), swap accuracy on fixed pairs, and the DSAE paper's disagreement /
    KL-recon / KL-random table. Example: dsae evaluate sprites --model runs/sprites --json
    """
    _evaluate("sprites", model, judge, repeats, json_out, plots, batch_size, seed, split, device, limit, swap_rounds)


@app.command("shapes")
def shapes_command(
    model: Path = typer.Option(..., "--model", "-m", help="Run folder (from `dsae train --data shapes`) or .safetensors bundle of a model trained on Moving shapes.", show_default=False),
    judge: Optional[Path] = typer.Option(None, "--judge", "-j", help="Judge folder from `dsae judge train --data shapes`; default: the embedded shapes judge, where this install has one.", show_default=False),
    repeats: int = typer.Option(3, "--repeats", "-r", min=1, help="Passes with fresh prior samples; each figure is their mean and std."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of Markdown tables."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Also write the judge's class probabilities over time (PNG) into this folder.", show_default=False),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sequences per model/judge call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the prior samples (the swap pairs are fixed)."),
    split: str = typer.Option("test", "--split", help="test: the 43 test contents (report figures once) | val: the 9 training contents that `dsae train` holds out with its default seed and split (choose on these)."),
    device: str = DeviceOption,
    swap_rounds: int = typer.Option(1, "--swap-rounds", min=1, help="Sets of swap pairs (each sequence with a new partner in each); the swap figures are their mean and std. More sets tell close models apart on a small split."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, hidden=True, help="Only the first N test sequences (tests)."),
) -> None:
    """Score a video model on the Moving shapes test (1376 sequences) or validation (288) split with a shapes judge.

    The same figures as `dsae evaluate sprites`, for the heads shape, colour, background (the content)
    and action (the direction of motion): swaps keep the content (f of a, z_1:T of b: a's shape,
    colour and background) and the motion (b's direction), generation keeps the content (f kept,
    z_1:T from the learned prior), the action test and the DSAE paper's table. Sequences have the
    model's frame count. Example: dsae evaluate shapes --model runs/shapes/best --judge runs/shapes-judge --split val --json
    """
    _evaluate("shapes", model, judge, repeats, json_out, plots, batch_size, seed, split, device, limit, swap_rounds)


def _evaluate(benchmark, model, judge, repeats, json_out, plots, batch_size, seed, split, device, limit, swap_rounds=1) -> None:
    """The body of ``dsae evaluate sprites`` and ``dsae evaluate shapes``."""
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        import json
        import sys
        from contextlib import nullcontext

        if plots is not None and plots.exists() and not plots.is_dir():
            raise DsaeError(f"--plots {plots} is a file; give a folder (it is created if missing)")
        if plots is not None:
            parent = plots.parent if str(plots.parent) else Path(".")
            if not parent.is_dir():
                raise DsaeError(f"folder {parent} for --plots does not exist; create it first (mkdir -p {parent})")

        from dsae_cli.evaluate import report
        from dsae_cli.evaluate.benchmarks import BENCHMARKS
        from dsae_cli.evaluate.judge import load_judge
        from dsae_cli.evaluate.sprites import evaluate_benchmark
        from dsae_cli.runtime import keep_freed_memory, load_model_for, resolve_device, seed_everything

        bench = BENCHMARKS[benchmark]
        seed_everything(seed)
        keep_freed_memory()  # batches of decoded frames: reuse their memory rather than fault it in again
        dev = resolve_device(device)
        net = load_model_for(model, "video", dev)
        if split not in ("val", "test"):
            raise DsaeError(f"unknown --split {split!r}; use val or test")
        jdg = load_judge(judge, dev, benchmark=benchmark)
        print(f"rendering the {bench.title} {split} {bench.unit} ...", file=sys.stderr)
        # Sprites has 8 frames a sequence; Moving shapes is drawn at the model's length
        data = bench.split(split, limit, frames=None if benchmark == "sprites" else net.config.seq_len)
        with (nullcontext(None) if json_out and not sys.stderr.isatty() else progress_bar("evaluate")) as progress:
            result = evaluate_benchmark(
                net, jdg, data, repeats=repeats, batch_size=batch_size, seed=seed, device=dev, progress=progress, swap_rounds=swap_rounds
            )
        if plots is not None:
            written = report.trajectory_plots(net, jdg, plots, seed=seed, device=dev, benchmark=benchmark)
            print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
        if json_out:
            print(json.dumps(result))
        else:
            print(report.markdown_report(result))


@app.command("predict")
def predict_command(
    models: Optional[List[Path]] = typer.Option(None, "--model", "-m", help="Run folder, .safetensors bundle or an embedded model's name (sprites); repeat to compare several. Default: the embedded model.", show_default=False),
    context: int = typer.Option(4, "--context", "-k", min=1, help="Frames given; the rest are predicted."),
    repeats: int = typer.Option(3, "--repeats", "-r", min=1, help="Roll-outs per sequence; figures are their mean and std."),
    judge: Optional[Path] = typer.Option(None, "--judge", "-j", help="Judge folder; default: the embedded judge.", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per model instead of a Markdown table."),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="Sequences per model/judge call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the roll-outs."),
    device: str = DeviceOption,
    limit: Optional[int] = typer.Option(None, "--limit", min=1, hidden=True, help="Only the first N test sequences (tests)."),
) -> None:
    """Reconstruction and prediction on the Sprites test set, the paper's comparison of stochastic
    and deterministic dynamics: pixel MSE of reconstructions and of frames K+1..T predicted from the
    first K, and whether the judge still sees the same action and look in the predictions.

    Example: dsae evaluate predict --model runs/dsae --model runs/lstm-f --model runs/lstm-c --context 4
    """
    from dsae_cli.errors import cli_errors

    with cli_errors():
        import json
        import sys

        from dsae_cli.data.sprites import sprites_split
        from dsae_cli.evaluate.judge import load_judge
        from dsae_cli.evaluate.report import prediction_report
        from dsae_cli.evaluate.sprites import evaluate_prediction
        from dsae_cli.runtime import load_model_for, resolve_device, seed_everything

        seed_everything(seed)
        dev = resolve_device(device)
        jdg = load_judge(judge, dev)
        nets = [(str(m) if m else "embedded", load_model_for(m, "video", dev)) for m in (models or [None])]
        print("rendering the Sprites test characters ...", file=sys.stderr)
        data = sprites_split("test", limit)
        rows = []
        for name, net in nets:
            print(f"evaluating {name} ...", file=sys.stderr)
            r = evaluate_prediction(net, jdg, data, context=context, repeats=repeats, batch_size=batch_size, seed=seed, device=dev)
            rows.append((name, {"model": name, **r}))
        if json_out:
            for _, r in rows:
                print(json.dumps(r))
        else:
            print(prediction_report(rows))
