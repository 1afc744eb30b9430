"""``dsae evaluate speech --data DIR``: speaker verification EER of mu_f and mu_z (Li & Mandt, 2018)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption


def evaluate_speech_command(
    data: Path = typer.Option(..., "--data", "-d", help="Corpus of speakers unseen in training (speaker/*.wav, LibriSpeech, TIMIT or VCTK tree)."),
    split: str = typer.Option("test", "--split", help="test: DIR holds speakers unseen in training | val: DIR is the model's training corpus; score the utterances training held out (default seed and split), each cut in two."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
) -> None:
    """Speaker verification on every pair of utterances: EER of mu_f, mu_z and plain baselines.

    mu_f (the static latent) should verify speakers well (low EER), mu_z (the dynamics) badly; the
    baselines (mean normalised log-spectrum, mean MFCC) are scored on the same trials.
    """
    from dsae_cli.errors import cli_errors

    with cli_errors():
        import json

        from dsae_cli.commands.common import progress_bar
        from dsae_cli.commands.video_common import say
        from dsae_cli.runtime import load_model_for, resolve_device
        from dsae_cli.evaluate.speaker import evaluate_speaker_verification

        dev = resolve_device(device)
        net = load_model_for(model, "speech", dev)
        with progress_bar("embed", transient=True) as progress:
            res = evaluate_speaker_verification(net, data, dev, progress=progress, split=split)
        if json_out:
            print(json.dumps(res))
            return
        print(
            f"speaker verification on {data}: {res['n_speakers']} speakers, {res['n_utterances']} utterances, "
            f"{res['n_trials']} trials ({res['n_target_trials']} same-speaker)"
        )
        rows = [
            ("mu_f (static latent)", res["eer_f"]),
            ("mu_z (dynamic latents)", res["eer_z"]),
            ("baseline: mean normalised log-spectrum", res["eer_logspec_mean"]),
            ("baseline: mean MFCC", res["eer_mfcc_mean"]),
        ]
        for name, eer in rows:
            print(f"  EER {name:<42} {100 * eer:6.2f} %")
        if res["skipped"]:
            say(f"note: {res['skipped']} unusable files skipped")
