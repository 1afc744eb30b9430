"""The ``dsae`` command-line app: one Typer app, one thin module per command in ``dsae_cli.commands``.

Command modules import only typer at module level; torch, librosa and the model are imported
inside command bodies, so ``dsae --help`` starts fast.
"""

from __future__ import annotations

from typing import Optional

import typer

from dsae_cli import __version__, errors
from dsae_cli.commands import convert_voice, data, encode, generate, judge, predict, reconstruct, swap, train
from dsae_cli.commands import evaluate, evaluate_speech
from dsae_cli.commands import export, fit_prior

app = typer.Typer(
    name="dsae",
    help=(
        "Disentangled sequence manipulation with the Disentangled Sequential Autoencoder (Li & Mandt, 2018): "
        "split animations and speech into content (f) and motion (z_1:T), then swap, generate and convert."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"dsae {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    errors.DEBUG = debug


app.command("train", no_args_is_help=False)(train.train_command)
app.command("encode")(encode.encode_command)
app.command("swap")(swap.swap_command)
app.command("generate")(generate.generate_command)
app.command("reconstruct")(reconstruct.reconstruct_command)
app.command("predict")(predict.predict_command)
app.command("convert-voice")(convert_voice.convert_voice_command)
app.command("export")(export.export_command)
app.command("fit-prior")(fit_prior.fit_prior_command)
app.add_typer(data.app, name="data")
evaluate.app.command("speech")(evaluate_speech.evaluate_speech_command)
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(judge.app, name="judge")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
