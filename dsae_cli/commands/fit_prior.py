"""``dsae fit-prior --model RUN --data sprites -o OUT``: give a trained model a fitted p(f).

Typer at module level only; torch, the data and the model load inside the body.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption, ModelOption


def fit_prior_command(
    output: Path = typer.Option(..., "-o", "--output", help="Where the model with the fitted p(f) goes: a new folder, or a .safetensors file.", show_default=False),
    data: str = typer.Option(..., "--data", "-d", help="The model's training data: sprites | FILE.npz | DIR of clips (GIFs or videos) | speech:DIR (its training split is used; the 5% validation share and test characters are left out).", show_default=False),
    model: Optional[Path] = ModelOption,
    device: str = DeviceOption,
) -> None:
    """Fit p(f) of a trained model to the aggregate posterior of its training sequences.

    p(f) becomes the full-covariance Gaussian closest to (1/N) sum_i q(f | x_i): the ELBO's best
    Gaussian prior for the trained encoder (encoder and decoder unchanged). `generate` and
    `evaluate` then draw f where the decoder was trained. `dsae train` does this at the end of
    stage unless --set train.fit_f_prior=false. Example: dsae fit-prior --model runs/sprites --data sprites -o runs/sprites-fitted
    """
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        import sys

        from dsae_cli.io.files import check_output_path
        from dsae_cli.runtime import model_path, resolve_device
        from dsae_cli.train.prior import refit_saved_f_prior, training_subset

        if output.exists():
            raise DsaeError(f"{output} already exists; choose a new -o (the model there is kept)")
        if output.suffix != ".safetensors":
            parent = output.parent if str(output.parent) else Path(".")
            if not parent.is_dir():
                raise DsaeError(f"output folder {parent} does not exist; create it first (mkdir -p {parent})")
        else:
            check_output_path(output, suffixes=(".safetensors",))
        from dsae_cli.checkpoint import load_model

        src = model_path(model, "speech" if data.startswith("speech:") else "video")
        dev = resolve_device(device)
        net = load_model(src, device=dev)
        print(f"loading the training sequences of {data} ...", file=sys.stderr)
        seqs = training_subset(data, net)
        n = refit_saved_f_prior(src, seqs, dst=output, device=dev, model=net)
        print(f"wrote {output}: p(f) fitted on {n} training sequences of {seqs.source}", file=sys.stderr)
