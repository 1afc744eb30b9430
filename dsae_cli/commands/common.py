"""Options shared by every command, so their names and help read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

MODEL_HELP = "Checkpoint folder (from `dsae train`), .safetensors bundle, or the name of an embedded model (sprites, speech); default: the embedded model."

ModelOption = typer.Option(None, "--model", "-m", help=MODEL_HELP, show_default=False)
DeviceOption = typer.Option("auto", "--device", help="auto | cpu | cuda | mps (auto picks the best available).")
SeedOption = typer.Option(0, "--seed", help="Random seed (sampling is reproducible for a given seed).")
FpsOption = typer.Option(8.0, "--fps", min=0.1, max=50.0, help="Frames per second of output GIFs.")

ModelArg = Optional[Path]


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
