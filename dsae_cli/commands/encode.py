"""``dsae encode x.gif -o x.npz``: posterior parameters of f and z_1:T, for later swaps and generation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import OutputOption, VideoOptions, video_command


@video_command("start", "stride", "model", "device", "seed")
def encode_command(
    source: Path = typer.Argument(..., help="Animation to encode (GIF, PNG/APNG, video file, or a folder of frames)."),
    output: Optional[Path] = OutputOption("Latents file (.npz; default: SOURCE.npz beside the input)."),
    json_summary: bool = typer.Option(False, "--json", help="Print a JSON summary (shapes, norms, model id) to stdout."),
    opts: VideoOptions = VideoOptions(),
) -> None:
    """Encode an animation: means and log-variances of f (content) and z_1:T (motion) into a .npz."""
    import json

    import numpy as np

    from dsae_cli import manipulate
    from dsae_cli.commands.video_common import check_output, default_output, open_model, say, say_note

    out = output or default_output(source.stem, ".npz", source.parent if source.parent.is_dir() else Path("."))
    out = check_output(out, (source,), ".npz")
    net = open_model(opts)
    clip = net.clip(source, opts.start, opts.stride, encode=False)  # an animation, not a latents file
    say_note(source, clip)
    lat = net.encode(clip.frames)
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
