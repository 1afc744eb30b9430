"""``dsae predict x.gif --context K -o out.gif``: the paper's prediction experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import GridOption, OutputOption, VideoOptions, video_command


@video_command("start", "stride", "fps", "model", "device", "seed")
def predict_command(
    source: Path = typer.Argument(..., help="Animation whose first frames are the context."),
    context: int = typer.Option(2, "--context", "-k", min=1, help="Frames encoded; the rest are predicted by the learned prior."),
    output: Optional[Path] = OutputOption("Output .gif, .mp4 or .webm (default: prediction.gif, never overwriting)."),
    grid: Optional[Path] = GridOption("input row, prediction row"),
    opts: VideoOptions = VideoOptions(),
) -> None:
    """Encode the first K frames (f and z_1:K), roll the learned prior p(z_t | z_<t) forward for the rest."""
    from dsae_cli.commands.video_common import say, transform

    _, pred, output = transform(source, output, grid, opts, "prediction", "pred", lambda net, clip: net.predict(clip, context, seed=opts.seed))
    say(f"wrote {output}: frames 1-{context} from the input's latents, {len(pred) - context} predicted")
