"""``dsae swap a.gif b.gif -o out.gif`` (or ``a.mp4 b.mp4 -o out.mp4``): a's content performing b's motion."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import GridOption, OutputOption, VideoOptions, video_command


@video_command("start", "stride", "fps", "model", "device", "seed")
def swap_command(
    content: Path = typer.Argument(..., help="Animation (GIF, PNG/APNG, video file, folder of frames) whose content (static f: the character's look) is kept; or a .npz from `dsae encode`."),
    motion: Path = typer.Argument(..., help="Animation whose motion (dynamics z_1:T) is kept; or a .npz from `dsae encode`."),
    output: Optional[Path] = OutputOption("Output .gif, .mp4 or .webm (default: swap.gif, never overwriting)."),
    both: bool = typer.Option(False, "--both", help="Also write b's content with a's motion, as OUTPUT-ba.gif (or .mp4, .webm like OUTPUT)."),
    grid: Optional[Path] = GridOption("rows a, b, result"),
    sample: bool = typer.Option(False, "--sample", help="Sample the latents instead of using posterior means."),
    opts: VideoOptions = VideoOptions(),
) -> None:
    """Swap content and motion: OUTPUT shows CONTENT's character doing MOTION's movement."""
    from dsae_cli.commands.video_common import check_grid, check_output, default_output, open_model, say, say_note, write_grid
    from dsae_cli.io import media

    inputs = (content, motion)
    output = check_output(output or default_output("swap"), inputs)
    ba_path = output.with_name(output.stem + "-ba" + output.suffix)
    if both:  # the second output is named after the first: it must not be an input either
        check_output(ba_path, inputs)
    check_grid(grid, inputs)
    net = open_model(opts)
    a, b = net.clip(content, opts.start, opts.stride), net.clip(motion, opts.start, opts.stride)
    say_note(content, a)
    say_note(motion, b)
    ab = net.swap(a, b, sample=sample, seed=opts.seed)
    media.write_video(output, ab, fps=opts.fps)
    rows, labels = [a.frames, b.frames, ab], ["a", "b", "a+b"]
    msg = f"wrote {output} ({len(ab)} frames): content of {content.name}, motion of {motion.name}"
    if both:
        ba = net.swap(b, a, sample=sample, seed=opts.seed)
        media.write_video(ba_path, ba, fps=opts.fps)
        rows.append(ba)
        labels.append("b+a")
        msg += f"; and {ba_path}"
    if grid is not None:
        write_grid(grid, rows, labels)
        msg += f"; picture {grid}"
    say(msg)
