"""``dsae predict x.gif --context K -o out.gif``: the paper's prediction experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, FpsOption, ModelOption, SeedOption


def predict_command(
    source: Path = typer.Argument(..., help="Animation whose first frames are the context."),
    context: int = typer.Option(2, "--context", "-k", min=1, help="Frames encoded; the rest are predicted by the learned prior."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output GIF (default: prediction.gif, never overwriting)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also write a PNG picture: input row, prediction row."),
    start: int = typer.Option(0, "--start", min=0, help="First frame used of inputs longer than the model's T."),
    stride: int = typer.Option(1, "--stride", min=1, help="Step between used frames of long inputs."),
    fps: float = FpsOption,
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Encode the first K frames (f and z_1:K), roll the learned prior p(z_t | z_<t) forward for the rest."""
    from dsae_cli.errors import cli_errors

    with cli_errors():
        from dsae_cli import manipulate
        from dsae_cli.io import media
        from dsae_cli.commands.video_common import default_output, say, setup, write_grid
        from dsae_cli.io.files import check_output_path

        output = check_output_path(output or default_output("prediction"), inputs=(source,), suffixes=(".gif",))
        if grid is not None:
            check_output_path(grid, inputs=(source,), suffixes=(".png",))
        net, dev = setup(model, device, seed)
        inp = manipulate.load_video(source, net, start, stride)
        if inp.note:
            say(f"note: {source}: {inp.note}")
        pred = manipulate.predict(net, inp.frames, context, seed=seed, device=dev)
        media.write_gif(output, pred, fps=fps)
        if grid is not None:
            write_grid(grid, [inp.frames, pred], ["input", "pred"])
        say(f"wrote {output}: frames 1-{context} from the input's latents, {len(pred) - context} predicted")
