"""Scale and reliability, through the real CLI: bad inputs fail with one clean line and damage
nothing, huge inputs stay small in memory, a run killed with SIGKILL resumes to exactly the losses
of an uninterrupted run, non-finite steps never reach a checkpoint, two torchrun processes train
together, and exported graphs reproduce the model."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from dsae_cli.io import media  # noqa: E402
from dsae_cli.io.video import read_frames  # noqa: E402
from dsae_cli.app import app  # noqa: E402

runner = CliRunner()
# one thread: bitwise-reproducible CPU runs, and no oversubscription on small CI machines
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
LOSS_KEYS = ("loss", "recon", "kl_f", "kl_z", "elbo", "val_loss", "lr")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def dsae(*args) -> list[str]:
    return [sys.executable, "-m", "dsae_cli", *(str(a) for a in args)]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gifs(sprite_gifs) -> Path:
    """Three Sprites characters x nine motions as 8-frame 64x64 GIFs (27 files; see conftest)."""
    return sprite_gifs


@pytest.fixture(scope="module")
def model(gifs, tmp_path_factory) -> Path:
    """A tiny model trained for a few steps (a complete run folder)."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    r = invoke("train", "--data", gifs, "--out", run, "--recipe", "tiny", "--steps", 3, "--eval-every", 3,
               "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    return run


# ------------------------------------------------------------------------------------------------
# bad inputs: one line, non-zero exit, no traceback, nothing damaged


@pytest.fixture(scope="module")
def bad(gifs, model, tmp_path_factory) -> Path:
    """A folder of broken inputs, damaged checkpoints and run folders."""
    from PIL import Image
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("bad")
    good = sorted(gifs.glob("*.gif"))
    (d / "a.gif").write_bytes(good[0].read_bytes())
    (d / "b.gif").write_bytes(good[10].read_bytes())
    (d / "x-ba.gif").write_bytes(good[11].read_bytes())
    (d / "sample_001.gif").write_bytes(good[12].read_bytes())
    (d / "empty.gif").write_bytes(b"")
    data = good[0].read_bytes()
    (d / "truncated.gif").write_bytes(data[: len(data) // 2])
    (d / "text.gif").write_text("not a picture\n")
    (d / "notes.txt").write_text("not a picture\n")
    Image.new("RGB", (64, 64), "red").save(d / "png_named.gif", format="PNG")
    frames = read_frames(good[0])
    media.write_gif(d / "short.gif", frames[:4])
    Image.fromarray(frames[0]).save(d / "corrupt.png")
    png = bytearray((d / "corrupt.png").read_bytes())
    at = png.index(b"IDAT") + 20
    png[at : at + 8] = b"\xff" * 8  # the checksum no longer matches
    (d / "corrupt.png").write_bytes(bytes(png))
    (d / "folder.gif").mkdir()
    (d / "empty_dir").mkdir()
    (d / "corrupt_data").mkdir()
    (d / "corrupt_data" / "x.gif").write_bytes(data[: len(data) // 3])
    (d / "random.npz").write_bytes(b"PK\x03\x04 not really a zip")
    np.savez(d / "foreign.npz", x=np.zeros(3))

    def checkpoint(name: str, config=None, weights: bytes | None = None) -> None:
        (d / name).mkdir()
        cfg = json.loads((model / "config.json").read_text())
        (d / name / "config.json").write_text(config if isinstance(config, str) else json.dumps(config or cfg))
        (d / name / "model.safetensors").write_bytes(weights if weights is not None else (model / "model.safetensors").read_bytes())

    cfg = json.loads((model / "config.json").read_text())
    w = (model / "model.safetensors").read_bytes()
    checkpoint("ck_truncated", weights=w[: len(w) // 2])
    checkpoint("ck_badjson", config="{not json")
    checkpoint("ck_foreign", config={"architectures": ["BertModel"], "hidden_size": 8})
    checkpoint("ck_speech", config={**cfg, "modality": "speech", "config": {**cfg["config"], "modality": "speech"}})
    checkpoint("ck_future", config={**cfg, "format_version": 99})
    from safetensors.torch import load_file

    state = load_file(str(model / "model.safetensors"))
    state[next(iter(state))] = torch.full_like(state[next(iter(state))], math.nan)
    save_file(state, str(d / "nan.safetensors"))
    checkpoint("ck_nan", weights=(d / "nan.safetensors").read_bytes())
    save_file({"w": torch.zeros(2)}, str(d / "plain.safetensors"))  # safetensors, but not from dsae
    for name, damage in (("run_bad_state", "state.pt"), ("run_bad_train", "train.json")):
        (d / name).mkdir()
        for f in model.iterdir():
            if f.is_file():
                (d / name / f.name).write_bytes(f.read_bytes())
        (d / name / damage).write_bytes((d / name / damage).read_bytes()[:50])
    return d


def snapshot(folder: Path) -> dict:
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# (args, a phrase the message must contain); {b} is the bad folder, {m} the model, {g} the GIF folder
BAD_CASES = [
    # inputs
    (("reconstruct", "{b}/missing.gif", "-o", "{tmp}/r.gif"), "not found"),
    (("reconstruct", "{b}/folder.gif", "-o", "{tmp}/r.gif"), "no frame images"),
    (("reconstruct", "{b}/empty.gif", "-o", "{tmp}/r.gif"), "empty"),
    (("reconstruct", "{b}/truncated.gif", "-o", "{tmp}/r.gif"), "truncated or corrupt"),
    (("reconstruct", "{b}/text.gif", "-o", "{tmp}/r.gif"), "not an image"),
    (("encode", "{b}/notes.txt", "-o", "{tmp}/x.npz"), "not an image"),
    (("reconstruct", "{b}/corrupt.png", "-o", "{tmp}/r.gif"), "corrupt"),
    (("reconstruct", "{b}/png_named.gif", "-o", "{tmp}/r.gif"), "has 1 frame but the model needs 8"),
    (("swap", "{b}/a.gif", "{b}/short.gif", "-o", "{tmp}/s.gif"), "has 4 frames but the model needs 8"),
    (("predict", "{b}/a.gif", "--start", 3, "-o", "{tmp}/p.gif"), "from frame 3"),
    (("generate", "--from", "{b}/truncated.gif", "-o", "{tmp}/g.gif"), "truncated or corrupt"),
    (("generate", "--from-latents", "{b}/a.gif", "-o", "{tmp}/g.gif"), "not a .npz"),
    (("generate", "--from-latents", "{b}/random.npz", "-o", "{tmp}/g.gif"), "not a latents file"),
    (("generate", "--from-latents", "{b}/foreign.npz", "-o", "{tmp}/g.gif"), "not a latents file"),
    (("swap", "{b}/random.npz", "{b}/a.gif", "-o", "{tmp}/s.gif"), "not a latents file"),
    # checkpoints
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/missing_model"), "not found"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/empty_dir"), "not a dsae checkpoint"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/a.gif"), "not a readable safetensors"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/plain.safetensors"), "not a dsae checkpoint"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_truncated"), "damaged"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_badjson"), "damaged"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_foreign"), "not a dsae checkpoint"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_speech"), "is a speech model"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_future"), "format version 99"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--model", "{b}/ck_nan"), "non-finite weights"),
    (("export", "--format", "torchscript", "-o", "{tmp}/ex", "--model", "{b}/ck_truncated"), "damaged"),
    # impossible option values
    (("generate", "--fix", "colour", "-o", "{tmp}/g.gif"), "unknown --fix"),
    (("predict", "{b}/a.gif", "--context", 8, "-o", "{tmp}/p.gif"), "--context must be between 1 and 7"),
    (("reconstruct", "{b}/a.gif", "-o", "{tmp}/r.gif", "--device", "tpu"), "unknown --device"),
    (("export", "--format", "savedmodel", "-o", "{tmp}/ex"), "unknown --format"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "huge"), "unknown --recipe"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--set", "model.beta_zz=2"), "did you mean model.beta_z?"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--set", "train.lrr=2"), "did you mean train.lr?"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--set", "model.f_dim"), "--set takes KEY=VALUE"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--set", "model.f_dim=big"), "expected a whole number"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "{b}/no.toml"), "recipe file"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--lr", 0), "--lr positive"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--set", "train.lr_schedule=step"), "unknown train.lr_schedule"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--recipe", "tiny", "--precision", "fp8"), "unknown --precision"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--set", "model.posterior=psychic"), "posterior must be one of"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--set", "model.dynamics=lstm-x"), "dynamics must be one of"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--init-from", "{b}/missing"), "not found"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--init-from", "{b}/a.gif"), "not a readable safetensors"),
    (("train", "--data", "{g}", "--out", "{tmp}/run", "--init-from", "{m}", "--set", f"model.z_dim={5}"), "may change only model.beta_f"),
    (("train", "--resume", "{m}", "--init-from", "{m}"), "cannot be combined with --resume"),
    # outputs
    (("reconstruct", "{b}/a.gif", "-o", "{b}/no/such/folder/r.gif"), "does not exist"),
    (("reconstruct", "{b}/a.gif", "-o", "{b}/a.gif"), "also an input"),
    (("encode", "{b}/a.gif", "-o", "{b}/folder.gif"), "is a directory"),
    (("swap", "{b}/a.gif", "{b}/b.gif", "-o", "{tmp}/s.png"), "must end in .gif"),
    (("swap", "{b}/a.gif", "{b}/x-ba.gif", "-o", "{b}/x.gif", "--both"), "also an input"),  # the -ba output
    (("generate", "--from", "{b}/sample_001.gif", "-n", 2, "--out-dir", "{b}"), "also an input"),
    (("generate", "--from", "{b}/a.gif", "--out-dir", "{b}/a.gif"), "is a file"),
    (("export", "--format", "torchscript", "-o", "{b}/a.gif"), "is a file"),
    (("export", "--format", "torchscript", "-o", "{b}/no/such/ex"), "does not exist"),
    (("export", "--format", "torchscript", "-o", "{m}"), "model's own folder"),
    # training data and run folders
    (("train", "--data", "{b}/missing", "--out", "{tmp}/run", "--recipe", "tiny"), "not found"),
    (("train", "--data", "{b}/a.gif", "--out", "{tmp}/run", "--recipe", "tiny"), "not a .npz"),
    (("train", "--data", "{b}/empty_dir", "--out", "{tmp}/run", "--recipe", "tiny"), "holds no GIF"),
    (("train", "--data", "{b}/corrupt_data", "--out", "{tmp}/run", "--recipe", "tiny"), "truncated or corrupt"),
    (("train", "--data", "{b}/random.npz", "--out", "{tmp}/run", "--recipe", "tiny"), "cannot read"),
    (("train", "--data", "{b}/foreign.npz", "--out", "{tmp}/run", "--recipe", "tiny"), "not a Sprites file"),
    (("train", "--data", "{g}", "--out", "{b}/a.gif", "--recipe", "tiny"), "is a file"),
    (("train", "--data", "{g}", "--out", "{m}", "--recipe", "tiny"), "already holds a run"),
    (("train", "--data", "{g}", "--out", "{m}/best", "--recipe", "tiny"), "already holds a model"),
    (("train", "--resume", "{b}/empty_dir"), "not a dsae run folder"),
    (("train", "--resume", "{b}/run_bad_train"), "train.json is missing or damaged"),
    (("train", "--resume", "{b}/run_bad_state"), "state.pt is damaged"),
    (("train", "--data", "{g}"), "exactly one of --out"),
]


@pytest.mark.parametrize("args,phrase", BAD_CASES, ids=[" ".join(map(str, a[:2])) + f"-{i}" for i, (a, _) in enumerate(BAD_CASES)])
def test_bad_input_fails_with_one_clean_line(args, phrase, bad, model, gifs, tmp_path):
    before = snapshot(bad), snapshot(model)
    args = [str(a).format(b=bad, m=model, g=gifs, tmp=tmp_path) for a in args]
    if args[0] in ("reconstruct", "encode", "swap", "generate", "predict", "export") and "--model" not in args:
        args += ["--model", str(model)]
    if args[0] != "export":
        args += ["--device", "cpu"] if "--device" not in args else []
    r = invoke(*args)
    assert r.exit_code == 1, (args, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, repr(r.exception))
    lines = r.output.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("error: "), (args, r.output)
    assert phrase in errors[0], (args, r.output)
    if args[0] != "train":  # training may log what it loaded before it fails
        assert len(lines) == 1, (args, r.output)
    assert "Traceback" not in r.output and "unexpected" not in r.output, r.output
    assert (snapshot(bad), snapshot(model)) == before, "an existing file was changed"


@pytest.mark.parametrize(
    "args",
    [
        ("generate", "-n", 0),
        ("generate", "-n", -3),
        ("predict", "{b}/a.gif", "--context", 0),
        ("encode", "{b}/a.gif", "--start", -1),
        ("swap", "{b}/a.gif", "{b}/b.gif", "--stride", 0),
        ("reconstruct", "{b}/a.gif", "--fps", 0),
        ("train", "--data", "{b}", "--out", "{b}/r", "--steps", 0),
        ("train", "--data", "{b}", "--out", "{b}/r", "--batch-size", -4),
        ("train", "--data", "{b}", "--out", "{b}/r", "--minutes", -1),
        ("export", "-o", "{b}/ex"),  # --format is required
    ],
)
def test_impossible_numbers_are_refused_before_anything_runs(args, bad):
    before = snapshot(bad)
    r = invoke(*[str(a).format(b=bad) for a in args])
    assert r.exit_code == 2, r.output
    assert ("Invalid value" in r.output or "Missing option" in r.output) and "Traceback" not in r.output
    assert snapshot(bad) == before


def test_a_failed_command_leaves_an_existing_output_intact(bad, model, tmp_path):
    out = tmp_path / "keep.gif"
    out.write_bytes(b"precious")
    r = invoke("reconstruct", bad / "truncated.gif", "-o", out, "--model", model, "--device", "cpu")
    assert r.exit_code == 1 and out.read_bytes() == b"precious"


# ------------------------------------------------------------------------------------------------
# huge inputs


def test_huge_gif_is_downscaled_frame_by_frame(model, tmp_path):
    """A 2000x2000 GIF of 8 frames is 96 MB as RGB; read frame by frame and shrunk on the way in,
    the command never holds more than a couple of full-size frames."""
    from PIL import Image

    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (252 * 3)
    frames = []
    for t in range(8):
        a = np.zeros((2000, 2000), np.uint8)
        a[100 + 60 * t : 700 + 60 * t, 500:1500] = 1 + t % 3
        im = Image.fromarray(a, "P")
        im.putpalette(palette)
        frames.append(im)
    big = tmp_path / "big.gif"
    frames[0].save(big, save_all=True, append_images=frames[1:], duration=100, loop=0)
    tracemalloc.start()
    try:
        r = invoke("reconstruct", big, "-o", tmp_path / "r.gif", "--model", model, "--device", "cpu")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "r.gif").shape == (8, 64, 64, 3)
    full = 8 * 2000 * 2000 * 3
    assert peak < 0.6 * full, f"peak {peak / 2**20:.0f} MiB of numpy/Python memory for a {full / 2**20:.0f} MiB clip"


# ------------------------------------------------------------------------------------------------
# crash safety and reproducibility


def test_cosine_time_schedule_anneals_over_the_wall_budget(gifs, tmp_path):
    """cosine-time: the rate falls monotonically and is near 0 when --minutes runs out, long before --steps;
    a resume with a new budget continues the anneal from where it was instead of starting over."""
    run = tmp_path / "run"
    args = ["--data", gifs, "--recipe", "tiny", "--steps", 1000000, "--set", f"train.log_every={1}", "--eval-every", 100000,
            "--checkpoint-every", 100000, "--preview-every", 0, "--set", "train.lr_schedule=cosine-time", "--device", "cpu"]  # fmt: skip
    r = invoke("train", "--out", run, "--minutes", 0.05, *args)
    assert r.exit_code == 0, r.output
    lrs = [row["lr"] for row in metrics(run)]
    assert len(lrs) > 5 and lrs[-1] < 1e-3 * 0.05 and all(a >= b for a, b in zip(lrs, lrs[1:])), lrs
    r = invoke("train", "--resume", run, "--minutes", 0.02)
    assert r.exit_code == 0, r.output
    later = [row["lr"] for row in metrics(run)][len(lrs):]
    assert later and max(later) <= lrs[-1] + 1e-12, (lrs[-1], later[:3])


@pytest.fixture
def hide_z_spy(monkeypatch):
    """The hide_z flag of every training-mode DSAE.loss call, in order (the loss itself runs as usual)."""
    from models import DSAE

    seen = []
    usual = DSAE.loss

    def spy(self, x, *a, hide_z=False, **k):
        if self.training:
            seen.append(hide_z)
        return usual(self, x, *a, hide_z=hide_z, **k)

    monkeypatch.setattr(DSAE, "loss", spy)
    return seen


def test_static_first_hides_z_for_the_first_steps_only(gifs, tmp_path, hide_z_spy):
    """dsae train --static-first N: the first N training steps decode from f alone (hide_z), the later ones
    from z and f; train.json records N."""
    seen = hide_z_spy
    run = tmp_path / "run"
    r = invoke("train", "--data", gifs, "--out", run, "--recipe", "tiny", "--steps", 5, "--set", f"train.static_first={3}",
               "--eval-every", 100, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert seen == [True, True, True, False, False]
    assert json.loads((run / "train.json").read_text())["train"]["static_first"] == 3


def test_preset_static_phase_is_skipped_when_starting_from_a_trained_model(gifs, tmp_path, monkeypatch, hide_z_spy):
    """A preset's static_first (the default preset's 600) applies to a new model; a run started --init-from
    a trained model decodes from z and f from its first step, unless --static-first is given."""
    recipe = tmp_path / "static.toml"
    recipe.write_text((Path(__file__).parent.parent / "dsae_cli" / "recipes" / "tiny.toml").read_text() + "static_first = 2\n")
    seen = hide_z_spy
    common = ["--data", gifs, "--recipe", recipe, "--steps", 3, "--eval-every", 100, "--preview-every", 0, "--device", "cpu"]
    r = invoke("train", "--out", tmp_path / "a", *common)
    assert r.exit_code == 0, r.output
    assert seen == [True, True, False]
    seen.clear()
    r = invoke("train", "--out", tmp_path / "b", "--init-from", tmp_path / "a" / "best", *common)
    assert r.exit_code == 0, r.output
    assert seen == [False, False, False]
    assert json.loads((tmp_path / "b" / "train.json").read_text())["train"]["static_first"] == 0
    seen.clear()
    r = invoke("train", "--out", tmp_path / "c", "--init-from", tmp_path / "a" / "best", "--set", f"train.static_first={1}", *common)
    assert r.exit_code == 0, r.output
    assert seen == [True, False, False]


def test_killed_run_resumes_to_the_same_losses(gifs, tmp_path):
    """kill -9 after a checkpoint (with later steps already logged), resume: every step's losses,
    validation losses and learning rates equal an uninterrupted run's, and no step is logged twice."""
    args = ["--data", gifs, "--recipe", "tiny", "--steps", 16, "--checkpoint-every", 6, "--set", f"train.log_every={1}",
            "--eval-every", 4, "--preview-every", 6, "--set", "train.lr_schedule=cosine", "--device", "cpu"]  # fmt: skip
    run = tmp_path / "run"
    victim = subprocess.Popen(dsae("train", "--out", run, *args), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_after_a_checkpoint():
        deadline = time.time() + 120
        while victim.poll() is None and time.time() < deadline:
            if (run / "state.pt").exists() and (run / "metrics.jsonl").exists():
                lines = (run / "metrics.jsonl").read_text().splitlines()
                if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= 8:
                    victim.kill()  # SIGKILL: no handler runs, no final checkpoint
                    return
            time.sleep(0.005)

    watchdog = threading.Thread(target=kill_after_a_checkpoint, daemon=True)
    watchdog.start()
    # meanwhile, the uninterrupted reference run, in this process (one thread, like the subprocess)
    r = invoke("train", "--out", tmp_path / "ref", *args)
    assert r.exit_code == 0, r.output
    watchdog.join(timeout=120)
    victim.wait()
    assert victim.returncode == -9, "the run ended before it could be killed"
    state = torch.load(run / "state.pt", weights_only=True)
    logged = metrics(run)[-1]["step"]
    assert state["step"] <= logged < 16, (state["step"], logged)  # steps logged after the checkpoint are re-run

    r = invoke("train", "--resume", run)
    assert r.exit_code == 0, r.output
    expected, got = metrics(tmp_path / "ref"), metrics(run)
    steps = [row["step"] for row in got]
    assert steps == list(range(1, 17)), steps  # every step once
    for a, b in zip(expected, got):
        assert {k: a.get(k) for k in LOSS_KEYS} == {k: b.get(k) for k in LOSS_KEYS}, (a, b)
    assert got[-1]["lr"] < got[0]["lr"]  # the cosine schedule continued where it was
    assert not list(run.glob(".*.tmp*"))


def test_sigterm_finishes_the_step_checkpoints_and_stops(gifs, tmp_path):
    """SIGTERM (kill, a scheduler, torchrun's shutdown) is handled like Ctrl-C: the state on disk is the last step's."""
    run = tmp_path / "run"
    proc = subprocess.Popen(
        dsae("train", "--data", gifs, "--out", run, "--recipe", "tiny", "--steps", 10_000, "--set", f"train.log_every={1}",
             "--checkpoint-every", 10_000, "--preview-every", 0, "--device", "cpu"),
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        lines = (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []
        if lines and lines[-1].endswith("}") and json.loads(lines[-1])["step"] >= 2:
            proc.send_signal(signal.SIGTERM)
            break
        time.sleep(0.01)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C or SIGTERM) at step" in err
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == metrics(run)[-1]["step"] >= 2


def test_metrics_line_cut_by_a_crash_is_repaired(tmp_path):
    from dsae_cli.train.runfolder import read_metrics, repair_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    repair_metrics(path)
    with open(path, "a") as fh:
        fh.write('{"step": 2, "loss": 1.5}\n')
    assert [r["step"] for r in read_metrics(path)] == [1, 2]


@pytest.fixture
def sabotage(monkeypatch):
    """Make the training loss non-finite (or its gradient) at chosen training calls."""
    from models.dsae import DSAE

    real = DSAE.loss
    plan: dict[int, str] = {}
    calls = {"n": 0}

    def loss(self, x, beta_f=None, beta_z=None, **kw):
        out = real(self, x, beta_f=beta_f, beta_z=beta_z, **kw)
        if not torch.is_grad_enabled():  # validation: leave it alone
            return out
        calls["n"] += 1
        how = plan.get(calls["n"], plan.get("always"))
        if how == "loss":
            out["loss"] = out["loss"] * math.nan
        elif how == "grad":  # a finite loss whose gradient is NaN: 0 * d sqrt(u)/du at u = 0
            w = next(self.parameters())
            out["loss"] = out["loss"] + 0.0 * torch.sqrt((w - w.detach()).abs().sum())
        return out

    monkeypatch.setattr(DSAE, "loss", loss)
    return plan


def test_non_finite_loss_and_gradient_are_skipped(sabotage, gifs, tmp_path):
    sabotage.update({2: "loss", 3: "loss", 5: "grad"})
    run = tmp_path / "run"
    r = invoke("train", "--data", gifs, "--out", run, "--recipe", "tiny", "--steps", 5, "--set", f"train.log_every={1}",
               "--checkpoint-every", 1, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "non-finite loss at step 2" in r.output and "non-finite gradient norm at step 3" in r.output
    rows = metrics(run)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5]
    assert all(math.isfinite(row["loss"]) for row in rows)
    from dsae_cli.checkpoint import load_model  # refuses non-finite weights

    load_model(run)
    state = torch.load(run / "state.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert all(torch.isfinite(t).all() for s in state["optimizer"]["state"].values() for t in s.values())


def test_ten_non_finite_steps_in_a_row_stop_without_a_checkpoint(sabotage, gifs, tmp_path):
    sabotage["always"] = "loss"
    run = tmp_path / "run"
    r = invoke("train", "--data", gifs, "--out", run, "--recipe", "tiny", "--steps", 20, "--device", "cpu")
    assert r.exit_code == 1
    assert "non-finite 10 times in a row" in r.output.strip().splitlines()[-1]
    assert not (run / "state.pt").exists() and not (run / "model.safetensors").exists()


# ------------------------------------------------------------------------------------------------
# several processes


def test_torchrun_two_processes_train_one_run(gifs, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dsae_cli", "train",
           "--data", str(gifs), "--out", str(run), "--recipe", "tiny", "--steps", "6", "--set", "train.log_every=1",
           "--eval-every", "3", "--checkpoint-every", "3", "--preview-every", "0", "--device", "cpu"]  # fmt: skip
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert said.count("finished at step 6") == 1 and said.count("data: ") == 1, said  # rank 0 alone speaks
    rows = metrics(run)
    assert [row["step"] for row in rows] == [1, 2, 3, 4, 5, 6]
    assert sum("val_loss" in row for row in rows) == 2
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_rng"]) == 2 and state["step"] == 6
    assert not torch.equal(state["rank_rng"][0]["torch"], state["rank_rng"][1]["torch"])  # own noise per process
    from dsae_cli.checkpoint import load_model

    load_model(run)
    # the two-process checkpoint resumes in one process
    r = invoke("train", "--resume", run, "--steps", 8, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert [row["step"] for row in metrics(run)] == list(range(1, 9))


def test_batch_must_divide_among_processes(gifs, tmp_path):
    from dsae_cli.data.sequences import load_training_data
    from dsae_cli.train.distributed import DistInfo
    from dsae_cli.errors import DsaeError
    from dsae_cli.train.config import TrainConfig
    from dsae_cli.train.loop import Trainer
    from dsae_cli.train.recipes import load_recipe
    from models import DSAE, DSAEConfig

    data = load_training_data(str(gifs))
    with pytest.raises(DsaeError, match="multiple of 2"):
        Trainer(DSAE(DSAEConfig(**load_recipe("tiny").model)), data, None, TrainConfig(batch_size=7), tmp_path, dist=DistInfo(0, 2, 0))


def test_shards_partition_each_global_batch(gifs, tmp_path):
    """Ranks take disjoint slices that together are exactly the single-process batch (no process group needed)."""
    from dsae_cli.data.sequences import load_training_data
    from dsae_cli.train.distributed import DistInfo
    from dsae_cli.train.config import TrainConfig
    from dsae_cli.train.batches import Batches
    from dsae_cli.train.loop import Trainer

    data = load_training_data(str(gifs))
    data.x = np.arange(len(data))[:, None, None, None, None].repeat(3, axis=-1).astype(np.uint8)  # sequence i holds i
    cfg = TrainConfig(batch_size=8, seed=3)

    def trainer(dist):
        t = Trainer.__new__(Trainer)  # only the data-order half of the Trainer
        t.data, t.cfg, t.dist, t.device, t.batches = data, cfg, dist, "cpu", Batches(data)
        t.epoch = t.position = t.step = 0
        t.order_gen = torch.Generator().manual_seed(cfg.seed)
        t.order = t._new_order()
        return t

    single, r0, r1 = trainer(DistInfo()), trainer(DistInfo(0, 2, 0)), trainer(DistInfo(1, 2, 1))
    for _ in range(7):  # past an epoch boundary (27 sequences)
        ids = [(t.next_batch()["x"][:, 0, 0, 0, 0] * 255).round().long().tolist() for t in (single, r0, r1)]
        assert sorted(ids[1] + ids[2]) == sorted(ids[0]) and len(ids[1]) == len(ids[2]) == 4


# ------------------------------------------------------------------------------------------------
# export


def _frames(gifs: Path) -> "torch.Tensor":
    from dsae_cli.data.sequences import video_batch

    return video_batch(np.stack([read_frames(p) for p in sorted(gifs.glob("*.gif"))[:3]]))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load: deprecated, still supported
def test_export_torchscript_reproduces_the_model(model, gifs, tmp_path):
    out = tmp_path / "served"
    r = invoke("export", "--model", model, "--format", "torchscript", "-o", out)
    assert r.exit_code == 0, r.output
    desc = json.loads((out / "export.json").read_text())
    assert desc["graph_format"] == "torchscript" and desc["encoder"]["file"] == "encoder.pt"
    assert [o["name"] for o in desc["encoder"]["outputs"]] == ["f_mean", "f_logvar", "z_mean", "z_logvar"]
    assert desc["config"]["f_dim"] == 16 and desc["verified"]["max_abs_diff"] <= 1e-4
    from dsae_cli.checkpoint import load_model

    net = load_model(model)
    encoder, decoder = torch.jit.load(str(out / "encoder.pt")), torch.jit.load(str(out / "decoder.pt"))
    x = _frames(gifs)
    with torch.no_grad():
        post = net.encode(x)
        got = encoder(x)
        for ref, g in zip((post.f_mean, post.f_logvar, post.z_mean, post.z_logvar), got):
            assert torch.allclose(ref, g, atol=1e-5)
        swapped = decoder(got[0], got[2].roll(1, dims=0))  # content of each, motion of the previous
        assert torch.allclose(swapped, net.decode(post.f_mean, post.z_mean.roll(1, dims=0)), atol=1e-5)
    # a second export into the same folder keeps the first unless told to replace it
    before = (out / "encoder.pt").read_bytes()
    r = invoke("export", "--model", model, "--format", "torchscript", "-o", out)
    assert r.exit_code == 1 and "--overwrite" in r.output and (out / "encoder.pt").read_bytes() == before
    assert invoke("export", "--model", model, "--format", "torchscript", "-o", out, "--overwrite").exit_code == 0


def test_export_onnx_runs_in_onnxruntime(model, gifs, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "served"
    r = invoke("export", "--model", model, "--format", "onnx", "-o", out)
    assert r.exit_code == 0, r.output
    assert "checked with onnxruntime" in r.output
    from dsae_cli.checkpoint import load_model

    net = load_model(model)
    x = _frames(gifs)[:, :6]  # another B and T than exported with
    enc = ort.InferenceSession(str(out / "encoder.onnx"), providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    f_mean, f_logvar, z_mean, z_logvar = enc.run(None, {"frames": x.numpy()})
    with torch.no_grad():
        post = net.encode(x)
        frames = net.decode(post.f_mean, post.z_mean).numpy()
    for ref, got in zip((post.f_mean, post.f_logvar, post.z_mean, post.z_logvar), (f_mean, f_logvar, z_mean, z_logvar)):
        assert np.allclose(ref.numpy(), got, atol=1e-4)
    (out_frames,) = dec.run(None, {"f": f_mean, "z": z_mean})
    assert out_frames.shape == (3, 6, 3, 64, 64) and np.allclose(out_frames, frames, atol=1e-4)


def test_export_onnx_without_onnx_says_what_to_install(model, tmp_path, monkeypatch):
    import dsae_cli.export as export

    monkeypatch.setattr(export, "missing_onnx_packages", lambda verify=True: ["onnx"])
    r = invoke("export", "--model", model, "--format", "onnx", "-o", tmp_path / "ex")
    assert r.exit_code == 1 and "pip install 'dsae[export]'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "ex" / "encoder.onnx").exists()


def test_export_speech_model_graphs(tmp_path):
    """Speech models export too: frames are spectrogram frames (B, T, n_bins)."""
    from dsae_cli.export import export_model
    from models import DSAE, DSAEConfig

    torch.manual_seed(0)
    net = DSAE(DSAEConfig(modality="speech", n_bins=33, seq_len=6, likelihood="gaussian", f_dim=4, z_dim=3,
                          hidden_dim=8, feature_dim=8, posterior="full")).eval()  # fmt: skip
    desc = export_model(net, tmp_path / "speech", "torchscript")
    assert desc["encoder"]["inputs"][0]["shape"] == ["batch", "time", 33]
    assert desc["verified"]["max_abs_diff"] <= 1e-4



def test_export_figure_over_background_model_graphs(tmp_path):
    """A model with decoder_object and f_object_view (the clips recipe's) exports too, for any B and T."""
    from dsae_cli.export import export_model
    from models import DSAE, DSAEConfig

    torch.manual_seed(0)
    net = DSAE(DSAEConfig(frame_size=32, seq_len=4, likelihood="gaussian", likelihood_scale=0.1, f_dim=6, z_dim=3, hidden_dim=8,
                          feature_dim=8, conv_width=4, posterior="factorised", z_moving=True, z_input_size=16,
                          decoder_object=True, f_object_view=True, f_figure_dim=2)).eval()  # fmt: skip
    desc = export_model(net, tmp_path / "clips", "torchscript")
    assert desc["verified"]["max_abs_diff"] <= 1e-4
    # the temporal median of what moves is a sort, so ONNX takes the graph too
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    desc = export_model(net, tmp_path / "clips-onnx", "onnx")
    assert desc["verified"]["max_abs_diff"] <= 1e-4
    x = torch.rand(2, 7, 3, 32, 32)  # another B and T than exported with
    enc = ort.InferenceSession(str(tmp_path / "clips-onnx" / "encoder.onnx"), providers=["CPUExecutionProvider"])
    f_mean, _, z_mean, _ = enc.run(None, {"frames": x.numpy()})
    with torch.no_grad():
        post = net.encode(x)
    assert np.allclose(post.f_mean.numpy(), f_mean, atol=1e-4) and np.allclose(post.z_mean.numpy(), z_mean, atol=1e-4)


def test_what_moves_is_measured_from_the_temporal_median():
    from models import DSAE, DSAEConfig

    net = DSAE(DSAEConfig(frame_size=16, seq_len=8, z_moving=True, z_input_size=16, conv_width=4, f_dim=4, z_dim=2, hidden_dim=8, feature_dim=8))
    x = torch.rand(3, 8, 3, 16, 16)
    median = x.median(dim=1, keepdim=True).values
    ref = ((x - median).abs().amax(dim=2, keepdim=True) / net.MOVING_LEVEL).clamp(max=1.0).expand_as(x)
    assert torch.equal(net.moving(x), ref)

# ------------------------------------------------------------------------------------------------
# speech inputs (convert-voice)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[Path, Path]:
    """(folder of broken and good recordings, a tiny speech model trained for two steps)."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("speech")
    corpus = root / "corpus"
    rng = np.random.RandomState(0)
    sr = 16000
    t = np.arange(int(1.2 * sr)) / sr
    for s, f0 in enumerate((110, 180, 260)):  # three "speakers": harmonic tones of different pitch
        (corpus / f"spk{s}").mkdir(parents=True)
        for u in range(2):
            phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * (0.5 + u) * t))) / sr
            x = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(4 * np.pi * t) ** 2)
            sf.write(corpus / f"spk{s}" / f"u{u}.wav", (0.3 * x / np.abs(x).max() + 0.003 * rng.randn(len(t))).astype(np.float32), sr)
    run = root / "run"
    r = invoke("train", "--data", f"speech:{corpus}", "--out", run, "--recipe", "tiny-speech", "--steps", 2,
               "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    d = root / "bad"
    d.mkdir()
    good = (corpus / "spk0" / "u0.wav").read_bytes()
    (d / "src.wav").write_bytes(good)
    (d / "tgt.wav").write_bytes((corpus / "spk1" / "u1.wav").read_bytes())
    (d / "empty.wav").write_bytes(b"")
    (d / "header_only.wav").write_bytes(good[:30])
    (d / "cut.wav").write_bytes(good[: len(good) // 2])  # a copy that stopped half way
    (d / "text.wav").write_text("not audio\n")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(d / "picture.wav", format="PNG")
    sf.write(d / "short.wav", (0.1 * rng.randn(800)).astype(np.float32), sr)
    sf.write(d / "silent.wav", np.zeros(2 * sr, np.float32), sr)
    sf.write(d / "no_samples.wav", np.zeros(0, np.float32), sr)
    (d / "folder.wav").mkdir()
    return d, run


SPEECH_CASES = [
    (("{d}/missing.wav", "--to", "{d}/tgt.wav"), "not found"),
    (("{d}/folder.wav", "--to", "{d}/tgt.wav"), "is a folder"),
    (("{d}/empty.wav", "--to", "{d}/tgt.wav"), "empty"),
    (("{d}/header_only.wav", "--to", "{d}/tgt.wav"), "not a readable audio file"),
    (("{d}/text.wav", "--to", "{d}/tgt.wav"), "not a readable audio file"),
    (("{d}/cut.wav", "--to", "{d}/tgt.wav"), "is cut short"),
    (("{d}/src.wav", "--to", "{d}/cut.wav"), "is cut short"),
    (("{d}/picture.wav", "--to", "{d}/tgt.wav"), "not a readable audio file"),
    (("{d}/short.wav", "--to", "{d}/tgt.wav"), "shorter than one"),
    (("{d}/src.wav", "--to", "{d}/short.wav"), "shorter than one"),
    (("{d}/silent.wav", "--to", "{d}/tgt.wav"), "silent"),
    (("{d}/no_samples.wav", "--to", "{d}/tgt.wav"), "no audio samples"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "-o", "{d}/src.wav"), "also an input"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "-o", "{d}/tgt.wav"), "also an input"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "-o", "{d}/nowhere/o.wav"), "does not exist"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "-o", "{tmp}/o.mp3"), "must end in .wav or .flac"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "--spectrogram", "{d}/src.wav"), "must end in .png"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "--model", "{video}"), "is a video model"),
    (("{d}/src.wav", "--to", "{d}/tgt.wav", "--device", "tpu"), "unknown --device"),
]


@pytest.mark.parametrize("args,phrase", SPEECH_CASES, ids=[f"{i}" for i in range(len(SPEECH_CASES))])
def test_convert_voice_bad_input_fails_with_one_clean_line(args, phrase, speech, model, tmp_path):
    folder, run = speech
    before = snapshot(folder), snapshot(run)
    args = ["convert-voice", *(str(a).format(d=folder, tmp=tmp_path, video=model) for a in args)]
    args += [] if "-o" in args else ["-o", str(tmp_path / "out.wav")]
    args += [] if "--model" in args else ["--model", str(run)]
    r = invoke(*args)
    assert r.exit_code == 1, (args, r.output)
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], (args, r.output)
    assert (snapshot(folder), snapshot(run)) == before, "an existing file was changed"


def test_speech_model_refused_by_video_commands(speech, gifs, tmp_path):
    _, run = speech
    r = invoke("reconstruct", next(gifs.glob("*.gif")), "-o", tmp_path / "r.gif", "--model", run, "--device", "cpu")
    assert r.exit_code == 1 and r.output.startswith("error: ") and "is a speech model" in r.output


def test_bf16_on_cpu_trains_where_the_cpu_has_it_and_says_why_not_elsewhere(gifs, tmp_path, monkeypatch):
    from dsae_cli.train import config as training

    args = ("train", "--data", gifs, "--recipe", "tiny", "--precision", "bf16", "--device", "cpu", "--steps", 3,
            "--eval-every", 3, "--preview-every", 0, "--set", f"train.log_every={1}")  # fmt: skip
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: False)
    r = invoke(*args, "--out", tmp_path / "no")
    assert r.exit_code == 1 and "needs --device cuda or a CPU with native bf16" in r.output and "Traceback" not in r.output
    assert training.autocast_dtype("auto", "cpu") is None  # never chosen for the user on a CPU
    assert training.autocast_dtype("native", "cpu") is None  # native: fp32 where the CPU has no bf16, no error
    r = invoke(*args[:6], "native", *args[7:], "--out", tmp_path / "native")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "native" / "train.json").read_text())["autocast"] == "fp32"
    monkeypatch.setattr(training, "cpu_has_bf16", lambda: True)
    assert training.autocast_dtype("native", "cpu") is torch.bfloat16 and training.autocast_dtype("native", "mps") is None
    monkeypatch.undo()
    if not training.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16")
    assert training.autocast_dtype("bf16", "cpu") is torch.bfloat16
    r = invoke(*args, "--out", tmp_path / "yes")
    assert r.exit_code == 0, r.output
    rows = metrics(tmp_path / "yes")
    assert len(rows) >= 3 and all(math.isfinite(row["loss"]) for row in rows)
    saved = json.loads((tmp_path / "yes" / "train.json").read_text())
    assert saved["train"]["precision"] == "bf16" and saved["autocast"] == "bf16"


_RSS_SCRIPT = """
import sys, torch
from dsae_cli.runtime import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
t = torch.ones(64 << 18)  # 64 MB, every page touched
held = rss_mb()
del t
print(kept, held - rss_mb())
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"), reason="glibc's malloc only")
def test_training_keeps_freed_blocks_for_reuse_instead_of_unmapping_them():
    """keep_freed_memory (which dsae train calls) stops glibc from unmapping a freed 64 MB block, so the
    next step reuses its pages instead of faulting in fresh ones; glibc's default gives it back at once."""
    out = {}
    for mode in ("keep", "default"):
        r = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, mode], capture_output=True, text=True, check=True)
        kept, dropped = r.stdout.split()
        out[mode] = (kept, float(dropped))
    assert out["keep"][0] == "True" and out["keep"][1] < 16
    assert out["default"][0] == "False" and out["default"][1] > 48
