"""``dsae reconstruct x.gif -o out.gif``: encode and decode, to see what the model keeps."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, FpsOption, ModelOption, SeedOption


def reconstruct_command(
    source: Path = typer.Argument(..., help="Animation to reconstruct (GIF, PNG/APNG, or a folder of frames)."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output GIF (default: reconstruction.gif, never overwriting)."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also write a PNG picture: input row, reconstruction row."),
    start: int = typer.Option(0, "--start", min=0, help="First frame used of inputs longer than the model's T."),
    stride: int = typer.Option(1, "--stride", min=1, help="Step between used frames of long inputs."),
    fps: float = FpsOption,
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Reconstruct an animation from its posterior means."""
    from dsae_cli.errors import cli_errors

    with cli_errors():
        from dsae_cli import manipulate
        from dsae_cli.io import media
        from dsae_cli.commands.video_common import default_output, say, setup, write_grid
        from dsae_cli.io.files import check_output_path

        output = check_output_path(output or default_output("reconstruction"), inputs=(source,), suffixes=(".gif",))
        if grid is not None:
            check_output_path(grid, inputs=(source,), suffixes=(".png",))
        net, dev = setup(model, device, seed)
        inp = manipulate.load_video(source, net, start, stride)
        if inp.note:
            say(f"note: {source}: {inp.note}")
        rec = manipulate.reconstruct(net, inp.frames, dev)
        media.write_gif(output, rec, fps=fps)
        if grid is not None:
            write_grid(grid, [inp.frames, rec], ["input", "recon"])
        err = float(abs(rec.astype(float) - inp.frames.astype(float)).mean())
        say(f"wrote {output} ({len(rec)} frames); mean absolute pixel error {err:.1f}/255")
