"""``dsae encode x.gif -o x.npz``: posterior parameters of f and z_1:T, for later swaps and generation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption, SeedOption


def encode_command(
    source: Path = typer.Argument(..., help="Animation to encode (GIF, PNG/APNG, or a folder of frames)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Latents file (.npz; default: SOURCE.npz beside the input)."),
    json_summary: bool = typer.Option(False, "--json", help="Print a JSON summary (shapes, norms, model id) to stdout."),
    start: int = typer.Option(0, "--start", min=0, help="First frame used of inputs longer than the model's T."),
    stride: int = typer.Option(1, "--stride", min=1, help="Step between used frames of long inputs."),
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Encode an animation: means and log-variances of f (content) and z_1:T (motion) into a .npz."""
    from dsae_cli.errors import cli_errors

    with cli_errors():
        import json

        import numpy as np

        from dsae_cli import manipulate
        from dsae_cli.commands.video_common import default_output, say, setup
        from dsae_cli.io.files import check_output_path

        out = output or default_output(source.stem, ".npz", source.parent if source.parent.is_dir() else Path("."))
        out = check_output_path(out, inputs=(source,), suffixes=(".npz",))
        net, dev = setup(model, device, seed)
        inp = manipulate.load_video(source, net, start, stride)
        if inp.note:
            say(f"note: {source}: {inp.note}")
        lat = manipulate.encode_frames(net, inp.frames, dev)
        manipulate.save_latents(out, lat, net, str(source))
        if json_summary:
            summary = {
                "source": str(source), "output": str(out), "model_id": net.model_id,
                "f_dim": int(lat["f_mean"].shape[0]), "seq_len": int(lat["z_mean"].shape[0]), "z_dim": int(lat["z_mean"].shape[1]),
                "f_norm": round(float(np.linalg.norm(lat["f_mean"])), 4),
                "z_norm_per_step": [round(float(v), 4) for v in np.linalg.norm(lat["z_mean"], axis=1)],
            }  # fmt: skip
            print(json.dumps(summary))
        say(f"wrote {out}: f {lat['f_mean'].shape[0]}-d, z {lat['z_mean'].shape[0]} x {lat['z_mean'].shape[1]}")
