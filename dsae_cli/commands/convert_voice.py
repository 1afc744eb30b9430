"""``dsae convert-voice src.wav --to target.wav``: say src's words in target's voice (swap f)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption


def convert_voice_command(
    source: Path = typer.Argument(..., help="Speech whose words (dynamics z_1:T) are kept: WAV, FLAC, any rate or channels."),
    to: List[Path] = typer.Option(..., "--to", help="Speech of the target voice (static f); repeat to pool several files."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Output .wav or .flac (default: SOURCE-to-TARGET.wav beside the source, never overwriting)."),
    spectrogram: Optional[Path] = typer.Option(None, "--spectrogram", help="Also write a PNG: source, target and converted spectrograms side by side (first 5 s)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=0, max=1000, help="Griffin-Lim iterations after the first phase (default: 0 with source-filter, whose excitation gives the phase; 32 with envelope)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the noise excitation (source-filter) or of Griffin-Lim's random initial phase (envelope); default: deterministic."),
    render: str = typer.Option("source-filter", "--render", help="source-filter: the decoded envelope times harmonics at the converted pitch plus noise where unvoiced; envelope: the decoded envelope alone."),
    pitch: str = typer.Option("target", "--pitch", help="target: move the source's pitch contour to the target voice's pitch mean and spread; source: keep the source's pitch."),
    strength: Optional[float] = typer.Option(None, "--strength", help="How far to move the voice [default: 1]: 1 takes the target's voice as the model reads it; more (1.5) goes past it, away from the source's, at some cost to the words and the naturalness.", show_default=False),
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
) -> None:
    """Convert the voice of SOURCE to the voice of the --to speaker(s).

    By default the decoded spectral envelope is given harmonics at the source's pitch contour moved
    to the target's pitch range (--pitch), and noise where the source is unvoiced (--render).

    The output keeps the source's length and timing, at the model's sample rate (16 kHz).
    """
    from dsae_cli.errors import cli_errors

    with cli_errors():
        from dsae_cli.commands.video_common import default_output, say
        from dsae_cli.io.files import check_output_path

        if output is None:
            output = default_output(f"{source.stem}-to-{to[0].stem}", ".wav", source.parent)
        check_output_path(output, inputs=(source, *to), suffixes=(".wav", ".flac"))
        from dsae_cli.errors import DsaeError
        from dsae_cli.voice import PITCHES, RENDERS

        if render not in RENDERS:
            raise DsaeError(f"--render must be one of {', '.join(RENDERS)}, not {render!r}")
        if pitch not in PITCHES:
            raise DsaeError(f"--pitch must be one of {', '.join(PITCHES)}, not {pitch!r}")
        if strength is not None and not strength > 0:
            raise DsaeError(f"--strength must be above 0, not {strength:g}")
        from dsae_cli.runtime import load_model_for, resolve_device
        from dsae_cli.voice import DEFAULT_STRENGTH, convert_voice

        dev = resolve_device(device)
        net = load_model_for(model, "speech", dev)
        from dsae_cli.commands.common import progress_bar

        with progress_bar("convert", transient=True) as progress:
            result = convert_voice(
                net, source, list(to), output, iterations, seed, spectrogram, dev, progress, render=render, pitch=pitch,
                strength=DEFAULT_STRENGTH if strength is None else strength,
            )
        msg = (
            f"wrote {result.output} ({result.seconds:.2f} s at {result.sample_rate // 1000} kHz): the words of {source.name} "
            f"in the voice of {', '.join(t.name for t in to)} ({result.target_seconds:.1f} s of target speech)"
        )
        if result.clipped:
            msg += f"; {result.clipped} samples clipped"
        if spectrogram is not None:
            msg += f"; picture {spectrogram}"
        say(msg)
