"""Helpers shared by the video commands: loading the model and inputs, checking and writing outputs, default names."""

from __future__ import annotations

from pathlib import Path


def default_output(stem: str, suffix: str = ".gif", folder: Path = Path(".")) -> Path:
    """``stem.gif``, or ``stem-1.gif``, ... if that exists: a default name never overwrites a file."""
    path = folder / f"{stem}{suffix}"
    i = 1
    while path.exists():
        path = folder / f"{stem}-{i}{suffix}"
        i += 1
    return path


def check_output(path: Path, inputs: tuple, suffix: str | tuple[str, ...] | None = "animation") -> Path:
    """``path`` checked before any work: its folder exists, it is not an input, it ends in ``suffix``
    (one suffix or several; the default ``"animation"``: .gif, .mp4 or .webm, what
    :func:`~dsae_cli.io.media.write_video` writes; ``None``: any)."""
    from dsae_cli.io.files import check_output_path

    if suffix == "animation":
        from dsae_cli.io.media import VIDEO_WRITE_SUFFIXES

        suffix = VIDEO_WRITE_SUFFIXES
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix or ())
    return check_output_path(path, inputs=inputs, suffixes=suffixes)


def check_grid(grid: Path | None, inputs: tuple) -> None:
    """The ``--grid`` picture, if asked for, checked like every output."""
    if grid is not None:
        check_output(grid, inputs, ".png")


def open_model(opts):
    """The video model of ``--model`` on ``--device`` (an :class:`~dsae_cli.api.Model`), seeds set from ``--seed``."""
    from dsae_cli.api import load

    return load(opts.model, "video", device=opts.device, seed=opts.seed)


def say_note(source: Path, clip) -> None:
    """Say on stderr what was done to ``source`` to fit the model (resized, a window of a longer clip)."""
    if clip.note:
        say(f"note: {source}: {clip.note}")


def transform(source: Path, output: Path | None, grid: Path | None, opts, stem: str, label: str, make):
    """What ``reconstruct`` and ``predict`` share: check the outputs (``output`` defaults to ``stem.gif``),
    load the model and ``source``, write ``make(net, clip)`` as a GIF, MP4 or WebM (by the output's
    name) and, with ``grid``, a picture
    of the input row and the result row (named ``label``). Returns (clip, result frames, output)."""
    from dsae_cli.io import media

    output = check_output(output or default_output(stem), (source,))
    check_grid(grid, (source,))
    net = open_model(opts)
    clip = net.clip(source, opts.start, opts.stride, encode=False)
    say_note(source, clip)
    result = make(net, clip)
    media.write_video(output, result, fps=opts.fps)
    if grid is not None:
        write_grid(grid, [clip.frames, result], ["input", label])
    return clip, result, output


def write_grid(path: Path, rows, labels=None, scale: int = 2) -> None:
    from dsae_cli.io import media

    media.write_png(path, media.upscale(media.make_grid(rows, labels=labels), scale))


def say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)
