"""Options shared by every command, so their names and help read the same everywhere, and the one
progress bar of every long command."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

MODEL_HELP = "Checkpoint folder (from `dsae train`), .safetensors bundle, or the name of an embedded model (sprites, speech); default: the embedded model."

ModelOption = typer.Option(None, "--model", "-m", help=MODEL_HELP, show_default=False)
DeviceOption = typer.Option("auto", "--device", help="auto | cpu | cuda | mps (auto picks the best available).")
SeedOption = typer.Option(0, "--seed", help="Random seed (sampling is reproducible for a given seed).")
FpsOption = typer.Option(8.0, "--fps", min=0.1, max=50.0, help="Frames per second of output animations (GIF, MP4, WebM).")
StartOption = typer.Option(0, "--start", min=0, help="First frame used of inputs longer than the model's T.")
StrideOption = typer.Option(1, "--stride", min=1, help="Step between used frames of long inputs.")

ModelArg = Optional[Path]


def OutputOption(help: str):  # noqa: N802 - declared like the options above, with the command's own help
    """``-o/--output``: the file a command writes (``help`` says which, and its default name)."""
    return typer.Option(None, "-o", "--output", help=help)


def GridOption(rows: str):  # noqa: N802
    """``--grid``: a PNG picture of the inputs and results, ``rows`` saying what its rows show."""
    return typer.Option(None, "--grid", help=f"Also write a PNG picture: {rows}.")


@dataclass(frozen=True)
class VideoOptions:
    """The options the video commands share: which model on which device, the seed, the GIF frame
    rate and, for commands that read animations, the window of a longer input (``start``, ``stride``)."""

    model: Optional[Path] = None
    device: str = "auto"
    seed: int = 0
    fps: float = 8.0
    start: int = 0
    stride: int = 1


# name -> (type, option) of each VideoOptions field
_VIDEO_OPTIONS = {
    "start": (int, StartOption), "stride": (int, StrideOption), "fps": (float, FpsOption),
    "model": (Optional[Path], ModelOption), "device": (str, DeviceOption), "seed": (int, SeedOption),
}  # fmt: skip


def video_command(*names: str):
    """Decorate a video command that takes ``opts: VideoOptions`` as its last parameter: it gets the
    options ``names`` (fields of :class:`VideoOptions`, listed in --help in that order after its own)
    and is called with them as one ``opts``; a :class:`~dsae_cli.errors.DsaeError` it raises becomes a
    one-line error. Typer builds the command from the signature set here and calls it with keywords."""

    def decorate(command):
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "opts"]
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=_VIDEO_OPTIONS[n][1], annotation=_VIDEO_OPTIONS[n][0]) for n in names]

        @functools.wraps(command)
        def run(**kwargs) -> None:
            from dsae_cli.errors import cli_errors

            opts = VideoOptions(**{n: kwargs.pop(n) for n in names})
            with cli_errors():
                command(**kwargs, opts=opts)

        run.__signature__ = inspect.Signature([*own, *shared], return_annotation=None)
        run.__annotations__ = {p.name: p.annotation for p in run.__signature__.parameters.values()}
        return run

    return decorate


class progress_bar:  # noqa: N801 - a context manager that yields a callback
    """The one progress bar of every long command: ``with progress_bar("train", total) as bar:
    bar(done, total=None, info="")``. A Rich bar on stderr (stdout keeps reports and JSON); with
    ``transient``, it is shown only when the work is not finished at the first update and removed
    at the end. ``bar.advance(n)`` counts up instead."""

    def __init__(self, label: str, total: int | None = None, completed: int = 0, transient: bool = False):
        self.label, self.total, self.completed, self.transient = label, total, completed, transient

    def __enter__(self):
        self.bar = None
        if not self.transient:
            self._start()
        return self

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn(f"[bold]{self.label}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=self.transient,
        )  # fmt: skip
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=self.total, completed=self.completed, info="")

    def __call__(self, done: int, total: int | None = None, info: str = "") -> None:
        if self.bar is None:
            if total is not None and done >= total:
                return  # finished in one go: nothing to show
            self._start()
        self.bar.update(self.task, completed=done, total=total if total is not None else self.total, info=info)

    def advance(self, n: int = 1) -> None:
        self.completed += n
        self(self.completed)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
