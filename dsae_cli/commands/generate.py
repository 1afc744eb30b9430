"""``dsae generate --fix content``: new animations from the learned priors, holding content or motion fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import GridOption, OutputOption, VideoOptions, video_command


@video_command("fps", "model", "device", "seed")
def generate_command(
    fix: str = typer.Option("content", "--fix", help="content: one f, N motions | motion: one z_1:T, N contents | none: both sampled."),
    n: int = typer.Option(8, "-n", "--num", min=1, max=1024, help="Number of sequences to generate."),
    output: Optional[Path] = OutputOption("One grid animation of all samples, .gif, .mp4 or .webm (default: generated.gif unless --out-dir)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Also write each sample as its own GIF (sample_000.gif, ...); the folder is created if missing."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace sample files that already exist in --out-dir."),
    source: Optional[Path] = typer.Option(None, "--from", help="Take the fixed f or z_1:T from this animation instead of the prior."),
    from_latents: Optional[Path] = typer.Option(None, "--from-latents", help="Take the fixed f or z_1:T from a .npz written by `dsae encode`."),
    grid: Optional[Path] = GridOption("one row per sample"),
    standard_prior: bool = typer.Option(False, "--standard-prior", help="Draw f from the paper's N(0, I) even if the model has a fitted p(f) (`dsae fit-prior`)."),
    opts: VideoOptions = VideoOptions(),
) -> None:
    """Generate N animations; --fix content keeps the character and varies the motion, --fix motion the reverse."""
    from dsae_cli.errors import DsaeError

    if fix not in ("content", "motion", "none"):
        raise DsaeError(f"unknown --fix {fix!r}; use content, motion or none")
    if source is not None and from_latents is not None:
        raise DsaeError("give at most one of --from and --from-latents")
    if fix == "none" and (source or from_latents):
        raise DsaeError("--fix none samples everything; drop --from/--from-latents or use --fix content|motion")
    from dsae_cli.commands.video_common import check_grid, check_output, default_output, open_model, say, say_note, write_grid
    from dsae_cli.io import media

    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise DsaeError(f"--out-dir {out_dir} is a file; give a folder (it is created if missing)")
    if from_latents is not None and from_latents.suffix.lower() != ".npz":
        raise DsaeError(f"--from-latents {from_latents} is not a .npz from `dsae encode`; for an animation use --from")
    inputs = tuple(p for p in (source, from_latents) if p is not None)
    if out_dir is not None:  # sample_000.gif, ... must not replace an input, nor earlier samples unless asked
        existing = [out_dir / f"sample_{i:03d}.gif" for i in range(n) if (out_dir / f"sample_{i:03d}.gif").exists()]
        for path in existing:
            check_output(path, inputs, None)
        if existing and not overwrite:
            raise DsaeError(f"--out-dir {out_dir} already holds {existing[0].name}; pass --overwrite to replace it, or choose another folder")
    if output is None and out_dir is None:
        output = default_output("generated")
    if output is not None:
        output = check_output(output, inputs)
    check_grid(grid, inputs)
    net = open_model(opts)
    clip = None
    if source is not None or from_latents is not None:
        clip = net.clip(source or from_latents)
        if source is not None:
            say_note(source, clip)
    samples = net.generate(fix, n, source=clip, seed=opts.seed, standard_prior=standard_prior)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if output is not None:
        media.write_video(output, media.grid_animation(list(samples)), fps=opts.fps)
        written.append(str(output))
    if out_dir is not None:
        for i, seq in enumerate(samples):
            media.write_gif(out_dir / f"sample_{i:03d}.gif", seq, fps=opts.fps)
        written.append(f"{out_dir}/sample_000.gif .. sample_{n - 1:03d}.gif")
    if grid is not None:
        write_grid(grid, list(samples))
        written.append(str(grid))
    what = {"content": "one content, varied motion", "motion": "one motion, varied content", "none": "content and motion sampled"}[fix]
    say(f"generated {n} sequences ({what}); wrote {', '.join(written)}")
