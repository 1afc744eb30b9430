"""The CLI end to end through ``typer.testing.CliRunner``: help, training a tiny model on real
sprite GIFs, and every video command on it and on the embedded model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dsae_cli.io.video import read_frames
from dsae_cli.data import sprites as sp
from dsae_cli.app import app
from dsae_cli.runtime import DEFAULT_MODELS

runner = CliRunner()
COMMANDS = ["train", "encode", "swap", "generate", "reconstruct", "predict", "convert-voice", "data", "fit-prior"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_top_level_help_lists_commands_without_importing_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from dsae_cli.app import app; "
        "r = CliRunner().invoke(app, ['--help']); print(r.output); "
        "assert r.exit_code == 0; assert 'torch' not in sys.modules and 'librosa' not in sys.modules, 'heavy import'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("train", "encode", "swap", "generate", "convert-voice"):
        assert name in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "dsae_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("dsae ")


@pytest.fixture(scope="session")
def tiny_run(sprite_gifs, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "tiny"
    result = invoke("train", "--data", sprite_gifs, "--out", run, "--recipe", "tiny", "--steps", 12, "--eval-every", 6,
                    "--checkpoint-every", 6, "--preview-every", 12, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def test_train_writes_a_complete_run(tiny_run):
    for name in ("config.json", "model.safetensors", "state.pt", "metrics.jsonl", "train.json", "loss.png", "preview.gif"):
        assert (tiny_run / name).is_file(), name
    assert (tiny_run / "best" / "model.safetensors").is_file()
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and steps[-1] == 12
    assert all({"loss", "recon", "kl_f", "kl_z"} <= set(r) for r in rows)
    assert any("val_loss" in r for r in rows)


def test_conv_width_option_sets_the_codec_width(sprite_gifs, tmp_path):
    from dsae_cli.checkpoint import load_model

    run = tmp_path / "wide"
    result = invoke("train", "--data", sprite_gifs, "--out", run, "--recipe", "tiny", "--set", f"model.conv_width={12}", "--steps", 1,
                    "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    model = load_model(run)
    assert model.config.conv_width == 12
    assert model.frame_encoder.conv[0].out_channels == 12 and model.frame_decoder.deconv[-1].in_channels == 12


def test_init_from_starts_a_new_run_from_trained_weights(tiny_run, sprite_gifs, tmp_path):
    from dsae_cli.checkpoint import load_model

    run = tmp_path / "tuned"
    result = invoke("train", "--data", sprite_gifs, "--out", run, "--recipe", "tiny", "--init-from", tiny_run, "--set", f"model.cycle_weight={0.5}", "--steps", 4,
                    "--eval-every", 2, "--checkpoint-every", 4, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    base, tuned = load_model(tiny_run), load_model(run)
    assert tuned.config.cycle_weight == 0.5 and tuned.config.f_dim == base.config.f_dim
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 4 and "cycle" in rows[-1]
    assert json.loads((run / "train.json").read_text())["init_from"]["model_id"] == base.model_id
    # the run starts where the trained model is: its first loss is far below a fresh model's
    fresh = tmp_path / "fresh"
    invoke("train", "--data", sprite_gifs, "--out", fresh, "--recipe", "tiny", "--steps", 1, "--set", f"train.log_every={1}", "--device", "cpu", "--seed", 0)
    first_fresh = json.loads((fresh / "metrics.jsonl").read_text().splitlines()[0])["recon"]
    assert rows[0]["recon"] < first_fresh
    bad = invoke("train", "--data", sprite_gifs, "--out", tmp_path / "bad", "--init-from", tiny_run, "--set", f"model.f_dim={3}")
    assert bad.exit_code == 1 and "may change only model.beta_f" in bad.output and "drop model.f_dim" in bad.output


def test_train_fits_p_f_and_fit_prior_does_the_same_for_any_model(tiny_run, sprite_gifs, tmp_path):
    import torch

    from dsae_cli.checkpoint import load_model

    final, best = load_model(tiny_run), load_model(tiny_run / "best")
    assert final.config.f_prior == "fitted" and best.config.f_prior == "fitted"
    assert final.checkpoint_meta["f_prior_fit"]["sequences"] > 0
    plain = tmp_path / "plain"
    assert invoke("train", "--data", sprite_gifs, "--out", plain, "--recipe", "tiny", "--steps", 2, "--set", "train.fit_f_prior=false",
                  "--preview-every", 0, "--device", "cpu").exit_code == 0  # fmt: skip
    assert load_model(plain).config.f_prior == "standard"
    # the command refits on the same training split: the same prior as the run's own fit
    out = tmp_path / "refit"
    result = invoke("fit-prior", "--model", tiny_run, "--data", sprite_gifs, "-o", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    refit = load_model(out)
    assert torch.allclose(refit.f_prior_loc, final.f_prior_loc, atol=1e-5)
    assert torch.allclose(refit.f_prior_scale_tril, final.f_prior_scale_tril, atol=1e-4)
    again = invoke("fit-prior", "--model", plain, "--data", sprite_gifs, "-o", out)
    assert again.exit_code == 1 and "already exists" in again.output
    wrong = invoke("fit-prior", "--model", plain, "--data", f"speech:{sprite_gifs}", "-o", tmp_path / "w")
    assert wrong.exit_code == 1 and "video model" in wrong.output and "Traceback" not in wrong.output


def test_resume_continues_without_duplicate_steps(tiny_run, sprite_gifs):
    result = invoke("train", "--resume", tiny_run, "--steps", 18)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line)["step"] for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 18


def gif(folder: Path, char: int, action: int) -> Path:
    return next(folder.glob(f"*_c{char}_a{action}.gif"))


def run_video_commands(model_args, folder: Path, out: Path):
    a = gif(folder, sp.character_id(0, 1, 2, 3), 1)
    b = gif(folder, sp.character_id(4, 5, 0, 1), 8)
    r = invoke("swap", a, b, "-o", out / "ab.gif", "--both", "--grid", out / "ab.png", *model_args)
    assert r.exit_code == 0, r.output
    assert read_frames(out / "ab.gif").shape == (8, 64, 64, 3)
    assert read_frames(out / "ab-ba.gif").shape == (8, 64, 64, 3)
    from PIL import Image

    with Image.open(out / "ab.png") as im:
        assert im.size[1] >= 4 * 64 * 2 and im.size[0] >= 8 * 64 * 2  # four rows (a, b, a+b, b+a) of 8, upscaled 2x
    r = invoke("encode", a, "-o", out / "a.npz", "--json", *model_args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[0])
    assert summary["seq_len"] == 8
    with np.load(out / "a.npz") as z:
        assert z["z_mean"].shape == (8, summary["z_dim"]) and z["f_logvar"].shape == (summary["f_dim"],)
    r = invoke("swap", out / "a.npz", b, "-o", out / "ab2.gif", *model_args)
    assert r.exit_code == 0, r.output
    r = invoke("generate", "--fix", "content", "-n", 3, "-o", out / "gen.gif", "--out-dir", out, "--from-latents", out / "a.npz", *model_args)
    assert r.exit_code == 0, r.output
    assert len(list(out.glob("sample_*.gif"))) == 3
    assert read_frames(out / "gen.gif").shape[0] == 8
    for fix in ("motion", "none"):
        r = invoke("generate", "--fix", fix, "-n", 2, "-o", out / f"gen_{fix}.gif", "--seed", 3, *model_args)
        assert r.exit_code == 0, r.output
    r = invoke("reconstruct", a, "-o", out / "rec.gif", "--grid", out / "rec.png", *model_args)
    assert r.exit_code == 0, r.output
    assert read_frames(out / "rec.gif").shape == (8, 64, 64, 3)
    r = invoke("predict", a, "--context", 3, "-o", out / "pred.gif", *model_args)
    assert r.exit_code == 0, r.output
    assert read_frames(out / "pred.gif").shape == (8, 64, 64, 3)


def test_video_commands_on_a_trained_run(tiny_run, sprite_gifs, tmp_path):
    run_video_commands(["--model", tiny_run, "--device", "cpu"], sprite_gifs, tmp_path)


def test_generate_is_reproducible_for_a_seed(tiny_run, tmp_path):
    for name in ("x.gif", "y.gif"):
        assert invoke("generate", "-n", 2, "-o", tmp_path / name, "--seed", 5, "--model", tiny_run).exit_code == 0
    assert np.array_equal(read_frames(tmp_path / "x.gif"), read_frames(tmp_path / "y.gif"))


def test_bad_inputs_give_one_line_errors(tiny_run, sprite_gifs, tmp_path):
    a = next(sprite_gifs.glob("*.gif"))
    text = tmp_path / "fake.gif"
    text.write_text("hello")
    cases = [
        ("swap", tmp_path / "missing.gif", a, "-o", tmp_path / "o.gif"),
        ("swap", text, a, "-o", tmp_path / "o.gif"),
        ("swap", a, a, "-o", tmp_path / "nofolder" / "o.gif"),
        ("swap", a, a, "-o", a),  # the output names an input
        ("generate", "--fix", "colour"),
        ("predict", a, "--context", 8, "-o", tmp_path / "p.gif"),
        ("swap", a, a, "-o", tmp_path / "o.gif", "--model", tmp_path / "nomodel"),
        ("train", "--data", sprite_gifs),  # no --out
        ("convert-voice", a, "--to", a),
    ]
    before = a.read_bytes()
    for args in cases:
        r = invoke(*args, *(["--model", tiny_run] if args[0] in ("generate", "predict") else []))
        assert r.exit_code != 0, args
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, r.output)
        assert "Traceback" not in r.output
    assert a.read_bytes() == before


def test_wrong_modality_checkpoint_is_refused(tiny_run, sprite_gifs, tmp_path):
    cfg = json.loads((tiny_run / "config.json").read_text())
    other = tmp_path / "speechlike"
    other.mkdir()
    cfg["modality"] = cfg["config"]["modality"] = "speech"
    (other / "config.json").write_text(json.dumps(cfg))
    (other / "model.safetensors").write_bytes((tiny_run / "model.safetensors").read_bytes())
    a = next(sprite_gifs.glob("*.gif"))
    r = invoke("reconstruct", a, "-o", tmp_path / "r.gif", "--model", other)
    assert r.exit_code == 1 and "speech model" in r.output


embedded = pytest.mark.skipif(not (DEFAULT_MODELS["video"] / "config.json").is_file(), reason="no embedded video model")


@embedded
def test_video_commands_on_the_embedded_model(sprite_gifs, tmp_path):
    run_video_commands([], sprite_gifs, tmp_path)


@embedded
def test_embedded_swap_keeps_content_of_a_and_motion_of_b(sprite_gifs, tmp_path):
    """The swap differs from both inputs yet re-encodes to a's f and b's z more closely than to the others'."""
    import torch

    from dsae_cli.runtime import load_model_for

    a = gif(sprite_gifs, sp.character_id(0, 1, 2, 3), 1)
    b = gif(sprite_gifs, sp.character_id(4, 5, 0, 1), 8)
    assert invoke("swap", a, b, "-o", tmp_path / "ab.gif").exit_code == 0
    out, fa, fb = (read_frames(p).astype(float) for p in (tmp_path / "ab.gif", a, b))
    assert np.abs(out - fa).mean() > 2 and np.abs(out - fb).mean() > 2
    model = load_model_for(None, "video", "cpu")
    from dsae_cli.manipulate import encode_frames

    la, lb, lo = (encode_frames(model, read_frames(p)) for p in (a, b, tmp_path / "ab.gif"))
    assert np.linalg.norm(lo["f_mean"] - la["f_mean"]) < np.linalg.norm(lo["f_mean"] - lb["f_mean"])
    assert np.linalg.norm(lo["z_mean"] - lb["z_mean"]) < np.linalg.norm(lo["z_mean"] - la["z_mean"])
    del torch


@embedded
def test_model_option_takes_an_embedded_models_name(sprite_gifs, tmp_path, monkeypatch):
    """--model speech / sprites loads an embedded model by name; a folder of that name in the working
    directory wins over the embedded one; an unknown name is a one-line error."""
    from dsae_cli.runtime import PRETRAINED_DIR, embedded_model_names, load_model_for, model_path

    assert {"sprites", "speech"} <= set(embedded_model_names())
    assert model_path("sprites", "video") == PRETRAINED_DIR / "sprites"
    assert load_model_for("sprites", "video", "cpu").config.conv_width == 16
    assert load_model_for(None, "video", "cpu").model_id == load_model_for("sprites", "video", "cpu").model_id
    a = next(sprite_gifs.glob("*.gif"))
    r = invoke("reconstruct", a, "-o", tmp_path / "r.gif", "--model", "sprites")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r.gif").is_file()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sprites").mkdir()
    assert model_path("sprites", "video") == Path("sprites")  # the local folder, not the embedded model
    r = invoke("reconstruct", a, "-o", tmp_path / "r2.gif", "--model", "no-such-model")
    assert r.exit_code != 0 and "Traceback" not in r.output and not (tmp_path / "r2.gif").exists()


def test_set_changes_one_field_of_the_recipe(sprite_gifs, tmp_path):
    from dsae_cli.checkpoint import load_model

    run = tmp_path / "sil"
    result = invoke("train", "--data", sprite_gifs, "--out", run, "--recipe", "tiny", "--set", "model.z_silhouette=true",
                    "--set", "model.z_input_size=16", "--steps", 1, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = load_model(run).config
    assert cfg.z_silhouette and cfg.z_input_size == 16 and cfg.f_dim == 16  # the recipe's other fields kept


def test_validation_hold_out_is_the_same_for_every_seed(sprite_gifs, tmp_path, monkeypatch):
    """--seed changes the model's initialisation and the data order, not which groups are held out, so
    runs of several seeds are scored on one validation split."""
    from dsae_cli.data import sequences

    held = []
    original = sequences.validation_split

    def recording(data, *args, **kwargs):
        train_idx, val_idx = original(data, *args, **kwargs)
        held.append(sorted(set(data.groups[val_idx].tolist())))
        return train_idx, val_idx

    monkeypatch.setattr(sequences, "validation_split", recording)
    for seed in (0, 3):
        result = invoke("train", "--data", sprite_gifs, "--out", tmp_path / f"s{seed}", "--recipe", "tiny", "--steps", 1,
                        "--set", "train.val_fraction=0.4", "--preview-every", 0, "--device", "cpu", "--seed", seed)  # fmt: skip
        assert result.exit_code == 0, result.output
    assert len(held) == 2 and held[0] and held[0] == held[1]
