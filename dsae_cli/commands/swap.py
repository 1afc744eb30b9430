"""``dsae swap a.gif b.gif -o out.gif``: a's content performing b's motion."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, FpsOption, ModelOption, SeedOption


def swap_command(
    content: Path = typer.Argument(..., help="Animation whose content (static f: the character's look) is kept; or a .npz from `dsae encode`."),
    motion: Path = typer.Argument(..., help="Animation whose motion (dynamics z_1:T) is kept; or a .npz from `dsae encode`."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output GIF (default: swap.gif, never overwriting)."),
    both: bool = typer.Option(False, "--both", help="Also write b's content with a's motion, as OUTPUT-ba.gif."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also write a PNG picture: rows a, b, result."),
    sample: bool = typer.Option(False, "--sample", help="Sample the latents instead of using posterior means."),
    start: int = typer.Option(0, "--start", min=0, help="First frame used of inputs longer than the model's T."),
    stride: int = typer.Option(1, "--stride", min=1, help="Step between used frames of long inputs."),
    fps: float = FpsOption,
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Swap content and motion: OUTPUT shows CONTENT's character doing MOTION's movement."""
    from dsae_cli.errors import cli_errors

    with cli_errors():
        from dsae_cli.api import load
        from dsae_cli.commands.video_common import default_output, say, write_grid
        from dsae_cli.io import media
        from dsae_cli.io.files import check_output_path

        output = check_output_path(output or default_output("swap"), inputs=(content, motion), suffixes=(".gif",))
        if both:  # the second output is named after the first: it must not be an input either
            check_output_path(output.with_name(output.stem + "-ba.gif"), inputs=(content, motion), suffixes=(".gif",))
        if grid is not None:
            check_output_path(grid, inputs=(content, motion), suffixes=(".png",))
        net = load(model, device=device, seed=seed)
        a, b = net.clip(content, start, stride), net.clip(motion, start, stride)
        for path, clip in ((content, a), (motion, b)):
            if clip.note:
                say(f"note: {path}: {clip.note}")
        ab = net.swap(a, b, sample=sample, seed=seed)
        media.write_gif(output, ab, fps=fps)
        rows, labels = [a.frames, b.frames, ab], ["a", "b", "a+b"]
        msg = f"wrote {output} ({len(ab)} frames): content of {content.name}, motion of {motion.name}"
        if both:
            ba_path = output.with_name(output.stem + "-ba.gif")
            ba = net.swap(b, a, sample=sample, seed=seed)
            media.write_gif(ba_path, ba, fps=fps)
            rows.append(ba)
            labels.append("b+a")
            msg += f"; and {ba_path}"
        if grid is not None:
            write_grid(grid, rows, labels)
            msg += f"; picture {grid}"
        say(msg)
