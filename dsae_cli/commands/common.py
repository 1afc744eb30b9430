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
