"""``dsae export --model RUN --format onnx -o served/``: encoder and decoder graphs to serve without dsae."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import ModelOption


def export_command(
    fmt: str = typer.Option(..., "--format", "-f", help="onnx (run with onnxruntime; needs the onnx package: the export extra) | torchscript (torch.jit.load).", show_default=False),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for encoder/decoder graphs and export.json (created if missing).", show_default=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace graphs an earlier export left in the folder."),
    model: Optional[Path] = ModelOption,
) -> None:
    """Export the encoder (frames -> f and z_1:T means, log-variances) and decoder ((f, z) -> frames) as standalone graphs."""
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        from dsae_cli.export import FORMATS

        if fmt not in FORMATS:
            raise DsaeError(f"unknown --format {fmt!r}; use {' or '.join(FORMATS)}")
        if output.exists() and not output.is_dir():
            raise DsaeError(f"--output {output} is a file; give a folder (it is created if missing)")
        parent = output.parent if str(output.parent) else Path(".")
        if not parent.is_dir():
            raise DsaeError(f"folder {parent} does not exist; create it first (mkdir -p {parent})")
        if model is not None and model.exists() and output.resolve() == model.resolve():
            raise DsaeError(f"--output {output} is the model's own folder; choose another folder so the checkpoint is kept apart")
        suffix = ".onnx" if fmt == "onnx" else ".pt"
        existing = [output / name for name in (f"encoder{suffix}", f"decoder{suffix}", "export.json") if (output / name).exists()]
        if existing and not overwrite:
            raise DsaeError(f"{output} already holds {existing[0].name}; pass --overwrite to replace it, or choose another folder")
        import sys

        from dsae_cli.checkpoint import load_model
        from dsae_cli.export import export_model
        from dsae_cli.runtime import model_path

        path = model_path(model, "video")
        net = load_model(path, device="cpu")
        desc = export_model(net, output, fmt, source=str(path))
        check = desc["verified"]
        checked = (
            f"checked with {check['runtime']}: max |difference| from PyTorch {check['max_abs_diff']:.1e}"
            if check.get("runtime")
            else "not run: install onnxruntime to check it"
        )
        print(
            f"wrote {output}/{desc['encoder']['file']}, {desc['decoder']['file']} and export.json "
            f"({desc['modality']} model {desc['model_id']}); {checked}",
            file=sys.stderr,
        )
