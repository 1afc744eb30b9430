"""``dsae data ...``: build data sets. ``dsae data sprites`` rebuilds the Sprites benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import progress_bar

app = typer.Typer(help="Build data sets.", no_args_is_help=True)


def _check_outputs(output: Path, gifs: Optional[Path]) -> Path:
    """The .npz path, checked, and the --gifs folder's parent checked; a one-line error otherwise."""
    from dsae_cli.errors import DsaeError
    from dsae_cli.io.files import check_output_path

    output = check_output_path(output, suffixes=(".npz",))
    if gifs is not None:
        if gifs.exists() and not gifs.is_dir():
            raise DsaeError(f"--gifs {gifs} is a file; give a folder (it is created if missing)")
        gifs_parent = gifs.parent if str(gifs.parent) else Path(".")
        if not gifs_parent.is_dir():
            raise DsaeError(f"folder {gifs_parent} for --gifs does not exist; create it first (mkdir -p {gifs_parent})")
    return output


def _say(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr)  # plain print: a one-line summary must not be wrapped


@app.command("sprites")
def sprites(
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the data set (.npz, about 31 MB).", show_default=False
    ),
    gifs: Optional[Path] = typer.Option(
        None,
        "--gifs",
        help="Also write every sequence as a looping GIF into this folder (train/, test/, labels.csv; about 12k files).",
        show_default=False,
    ),
):
    """Rebuild the Sprites benchmark (Li & Mandt, ICML 2018) from the embedded LPC art.

    1296 characters (6 skins x 6 pants x 6 tops x 6 hairstyles) x 9 motions (walk, spellcast, slash; front, left, right) = 11664 sequences of 8 RGB frames of 64x64, with the original train/test split by character (9000 / 2664 sequences). The .npz holds x (uint8 frames), skin, pants, top, hair, action (0..8), char_id and split.

    The art is CC-BY-SA 3.0 / GPL 3.0: keep the credits in dsae_cli/assets/lpc/AUTHORS.txt with anything you share.
    """
    from dsae_cli.errors import cli_errors

    with cli_errors():
        import time

        from dsae_cli.data import sprites as sp
        from dsae_cli.data.sprites_files import write_sprites_gifs, write_sprites_npz

        output = _check_outputs(output, gifs)  # before spending time on the build

        start = time.perf_counter()
        with progress_bar("sprites", sp.N_CHARACTERS) as update:
            data = sp.build_sprites(progress=update.advance)
        _say(f"compressing and writing {output} ...")
        write_sprites_npz(output, data)
        if gifs is not None:
            with progress_bar("gifs", len(data["x"])) as update:
                write_sprites_gifs(gifs, data, progress=update.advance)
        elapsed = time.perf_counter() - start

        n_train = int((data["split"] == "train").sum())
        n_test = int((data["split"] == "test").sum())
        gif_note = f" and GIFs in {gifs}/" if gifs is not None else ""
        _say(
            f"wrote {len(data['x'])} sequences ({sp.N_CHARACTERS} characters x {sp.N_MOTIONS} motions; "
            f"train {n_train}, test {n_test}) to {output}{gif_note} in {elapsed:.1f} s"
        )


@app.command("shapes")
def shapes(
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the data set (.npz, about 16 MB).", show_default=False
    ),
    gifs: Optional[Path] = typer.Option(
        None,
        "--gifs",
        help="Also write every sequence as a looping GIF into this folder (train/, val/, test/, labels.csv; 6912 files).",
        show_default=False,
    ),
    frames: int = typer.Option(8, "--frames", min=2, max=64, help="Frames per sequence (the figure moves the same distance whatever the number)."),
):
    """Build the Moving shapes benchmark: coloured figures moving over coloured, textured backgrounds.

    216 contents (6 shapes x 6 colours x 6 backgrounds) x 8 directions x 4 = 6912 sequences of 64x64 RGB frames, split by content: train 164 contents, val 9 (the ones `dsae train --data shapes` holds out), test 43. The .npz holds x (uint8 frames), shape, colour, background, action (the direction, 0..7), content_id and split. Train on it with `dsae train --data FILE.npz` (or `--data shapes`, which renders it on the fly) and score a model with `dsae evaluate shapes`.
    """
    from dsae_cli.errors import cli_errors

    with cli_errors():
        import time

        import numpy as np

        from dsae_cli.data import shapes as sh
        from dsae_cli.data.sequences import held_out_groups

        output = _check_outputs(output, gifs)

        start = time.perf_counter()
        with progress_bar("shapes", sh.N_CONTENTS) as update:
            data = sh.build_shapes(frames=frames, progress=update.advance)
        train_ids, test_ids = sh.split_content_ids()
        val_ids = held_out_groups(train_ids)
        cid = data["content_id"]
        data["split"] = np.where(np.isin(cid, test_ids), "test", np.where(np.isin(cid, val_ids), "val", "train"))
        _say(f"compressing and writing {output} ...")
        sh.write_shapes_npz(output, data)
        if gifs is not None:
            with progress_bar("gifs", len(data["x"])) as update:
                sh.write_shapes_gifs(gifs, data, progress=update.advance)
        counts = {s: int((data["split"] == s).sum()) for s in ("train", "val", "test")}
        gif_note = f" and GIFs in {gifs}/" if gifs is not None else ""
        _say(
            f"wrote {len(data['x'])} sequences of {frames} frames (train {counts['train']}, val {counts['val']}, "
            f"test {counts['test']}) to {output}{gif_note} in {time.perf_counter() - start:.1f} s"
        )
