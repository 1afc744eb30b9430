"""``dsae reconstruct x.gif -o out.gif``: encode and decode, to see what the model keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import GridOption, OutputOption, VideoOptions, video_command


@video_command("start", "stride", "fps", "model", "device", "seed")
def reconstruct_command(
    source: Path = typer.Argument(..., help="Animation to reconstruct (GIF, PNG/APNG, video file, or a folder of frames)."),
    output: Optional[Path] = OutputOption("Output .gif, .mp4 or .webm (default: reconstruction.gif, never overwriting)."),
    grid: Optional[Path] = GridOption("input row, reconstruction row"),
    opts: VideoOptions = VideoOptions(),
) -> None:
    """Reconstruct an animation from its posterior means."""
    from dsae_cli.commands.video_common import say, transform

    clip, rec, output = transform(source, output, grid, opts, "reconstruction", "recon", lambda net, clip: net.reconstruct(clip))
    err = float(abs(rec.astype(float) - clip.frames.astype(float)).mean())
    say(f"wrote {output} ({len(rec)} frames); mean absolute pixel error {err:.1f}/255")
