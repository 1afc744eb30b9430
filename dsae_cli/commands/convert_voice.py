"""``dsae convert-voice src.wav --to target.wav``: say src's words in target's voice (swap f)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption, SeedOption


def convert_voice_command(
    source: Path = typer.Argument(..., help="Speech whose words (dynamics z_1:T) are kept."),
    to: List[Path] = typer.Option(..., "--to", help="Speech of the target voice (static f); repeat to pool several files."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output WAV (default: SOURCE-converted.wav)."),
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
    seed: int = SeedOption,
) -> None:
    """Convert the voice of SOURCE to the voice of the --to speaker(s), rendered with Griffin-Lim."""
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        raise DsaeError(
            "convert-voice is not available yet in this version (the speech model is still to come); "
            "nothing was written"
        )
