"""Video files (MP4, WebM, MOV, AVI, MKV) in and out: synthetic clips written with imageio-ffmpeg,
read back through ``read_frames``, written by ``write_video``, broken files as one-line errors, and
the commands end to end on MP4 input and output, with a 16-frame model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")

from dsae_cli.app import app  # noqa: E402
from dsae_cli.errors import DsaeError  # noqa: E402
from dsae_cli.io.media import write_video  # noqa: E402
from dsae_cli.io.video import read_frames  # noqa: E402
from dsae_cli.runtime import DEFAULT_MODELS  # noqa: E402

runner = CliRunner()

BACKGROUND = (40, 90, 200)
SQUARE = (230, 200, 30)
# the ffmpeg encoder of each container in these tests (AVI: Motion JPEG, as cameras write)
# frame side of the 16-frame test model
SIZE = 16
CODECS = {".mp4": "libx264", ".webm": "libvpx-vp9", ".mov": "libx264", ".mkv": "libx264", ".avi": "mjpeg"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def moving_square(n: int = 16, size: int = 64, background=BACKGROUND, colour=SQUARE, step: int = 2) -> np.ndarray:
    """uint8 (n, size, size, 3): a 16-pixel square moving right by ``step`` pixels a frame over ``background``."""
    frames = np.empty((n, size, size, 3), np.uint8)
    frames[:] = background
    for t in range(n):
        x = 4 + step * t
        frames[t, 24:40, x : x + 16] = colour
    return frames


def write_clip(path: Path, frames: np.ndarray, fps: float = 8.0) -> Path:
    """Write ``frames`` with imageio-ffmpeg itself (not with the writer under test)."""
    n, h, w, _ = frames.shape
    codec = CODECS[path.suffix]
    extra = ["-q:v", "2"] if codec == "mjpeg" else ["-crf", "18"] if codec == "libx264" else ["-crf", "30", "-b:v", "0"]
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec=codec, pix_fmt_out=pix, quality=None,
                                         macro_block_size=1, output_params=extra, ffmpeg_log_level="error")  # fmt: skip
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def assert_one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message, message
    for needle in needles:
        assert needle in message, message


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mov", ".avi", ".mkv"])
def test_read_frames_decodes_video_files(tmp_path, suffix):
    path = write_clip(tmp_path / f"clip{suffix}", moving_square(14))
    frames = read_frames(path)
    assert frames.dtype == np.uint8 and frames.shape == (14, 64, 64, 3)
    # lossy codecs: colours within a few levels, away from the square's edges
    assert np.abs(frames[:, 4, 4].astype(int) - BACKGROUND).max() <= 8
    for t in (0, 13):
        assert np.abs(frames[t, 32, 4 + 2 * t + 8].astype(int) - SQUARE).max() <= 10
    # the square moves right by 2 pixels a frame: 26 pixels from the first frame to the last
    first, last = (np.abs(frames[t].astype(int) - SQUARE).sum(-1) < 60 for t in (0, 13))
    assert abs(np.nonzero(last)[1].mean() - np.nonzero(first)[1].mean() - 26) < 1.5


def test_video_reads_keep_the_memory_guards(tmp_path):
    path = write_clip(tmp_path / "wide.mp4", moving_square(12, size=128))
    assert read_frames(path, max_side=32).shape == (12, 32, 32, 3)  # shrunk by ffmpeg as decoded
    assert read_frames(path, stop=5).shape == (5, 128, 128, 3)  # only the frames a window needs
    with pytest.raises(DsaeError) as excinfo:
        read_frames(path, max_frames=10)
    assert_one_line_error(excinfo, "wide.mp4", "more than 10 frames")
    with pytest.raises(DsaeError) as excinfo:
        read_frames(path, max_bytes=3 * 128 * 128 * 3)
    assert_one_line_error(excinfo, "wide.mp4", "too big")


# ------------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_write_video_round_trips(tmp_path, suffix):
    frames = moving_square(12)
    path = tmp_path / f"out{suffix}"
    write_video(path, frames, fps=8)
    back = read_frames(path)
    assert back.shape == frames.shape
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 6
    assert not list(tmp_path.glob(".*tmp*")), "the temporary file is gone"
    # odd sides are padded by one row/column (yuv420p needs even sides)
    write_video(path, frames[:, :45, :63], fps=12)
    assert read_frames(path).shape == (12, 46, 64, 3)


def test_write_video_picks_the_format_from_the_name(tmp_path):
    frames = moving_square(9)
    write_video(tmp_path / "a.gif", frames)
    assert np.array_equal(read_frames(tmp_path / "a.gif"), frames)  # GIF: the exact palette writer
    assert (tmp_path / "a.gif").read_bytes()[:3] == b"GIF"
    write_video(tmp_path / "b.MP4", frames)
    assert (tmp_path / "b.MP4").read_bytes()[4:8] == b"ftyp"
    with pytest.raises(DsaeError) as excinfo:
        write_video(tmp_path / "c.avi", frames)
    assert_one_line_error(excinfo, "c.avi", ".gif", ".mp4", ".webm")
    assert not (tmp_path / "c.avi").exists()


def test_missing_ffmpeg_or_encoder_is_a_one_line_error(tmp_path, monkeypatch):
    import sys

    from dsae_cli.io import ffmpeg

    clip = write_clip(tmp_path / "clip.mp4", moving_square(8))
    monkeypatch.setitem(ffmpeg.WRITE_SUFFIXES, ".webm", ("webm", ["-c:v", "libnosuchcodec"]))
    with pytest.raises(DsaeError) as excinfo:
        write_video(tmp_path / "out.webm", moving_square(8))
    assert_one_line_error(excinfo, "libnosuchcodec", ".gif")
    assert not (tmp_path / "out.webm").exists()
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    for action in (lambda: read_frames(clip), lambda: write_video(tmp_path / "o.mp4", moving_square(8))):
        with pytest.raises(DsaeError) as excinfo:
            action()
        assert_one_line_error(excinfo, "pip install imageio-ffmpeg")


def test_broken_video_files_are_one_line_errors(tmp_path):
    good = write_clip(tmp_path / "good.mp4", moving_square(16))
    data = good.read_bytes()
    webm = write_clip(tmp_path / "good.webm", moving_square(16)).read_bytes()
    noise = np.random.RandomState(0).randint(0, 256, (24, 64, 64, 3)).astype(np.uint8)
    big = write_clip(tmp_path / "noise.avi", noise).read_bytes()  # large frames: cut inside a frame
    cases = {
        "truncated.mp4": data[: len(data) // 2],  # the index (moov, at the end) is lost
        "truncated.webm": webm[: len(webm) * 2 // 3],
        "truncated.avi": big[: len(big) * 2 // 3],
        "text.mp4": b"just some text, renamed\n",
        "fake.mov": b"\x00\x00\x00\x18ftypqt   not really a movie",
        "empty.mkv": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(DsaeError) as excinfo:
            read_frames(tmp_path / name)
        assert_one_line_error(excinfo, name)
    audio = tmp_path / "sound.mp4"  # a file with no video stream
    import subprocess

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
                    "-c:a", "aac", str(audio)], check=True)  # fmt: skip
    with pytest.raises(DsaeError) as excinfo:
        read_frames(audio)
    assert_one_line_error(excinfo, "no video stream")


# ------------------------------------------------------------------------------------------ commands


def clip_folder(folder: Path, n_files: int = 4, frames: int = 20) -> Path:
    """Clips of a square of one of several colours moving over a background of another."""
    folder.mkdir()
    colours = [(230, 200, 30), (30, 220, 90), (240, 80, 160), (250, 250, 250)]
    backs = [(40, 90, 200), (90, 30, 30), (20, 20, 20), (120, 120, 60)]
    for i in range(n_files):
        clip = moving_square(frames, background=backs[i % 4], colour=colours[i % 4], step=1 + i % 2)
        write_clip(folder / f"clip{i}{['.mp4', '.webm'][i % 2]}", clip)
    return folder


@pytest.fixture(scope="module")
def run16(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, clips folder): a tiny model with 16-frame sequences (of 16x16 frames, for speed),
    trained 2 steps on a folder of MP4/WebM files."""
    base = tmp_path_factory.mktemp("video_files")
    clips = clip_folder(base / "clips")
    run = base / "run16"
    r = invoke("train", "--data", clips, "--recipe", "tiny", "--set", "model.seq_len=16", "--set", f"model.frame_size={SIZE}",
               "--set", "train.fit_f_prior=false", "--steps", 2, "--batch-size", 4, "--out", run,
               "--eval-every", 2, "--checkpoint-every", 2, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    return run, clips


def test_train_on_a_folder_of_video_files_with_16_frame_sequences(run16):
    import json

    run, _ = run16
    assert json.loads((run / "config.json").read_text())["config"]["seq_len"] == 16
    assert (run / "model.safetensors").is_file()


def test_swap_mp4_to_mp4_with_a_16_frame_model(run16, tmp_path):
    run, clips = run16
    a, b = clips / "clip0.mp4", clips / "clip1.webm"
    r = invoke("swap", a, b, "-o", tmp_path / "out.mp4", "--both", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "out.mp4").shape == (16, SIZE, SIZE, 3)
    assert read_frames(tmp_path / "out-ba.mp4").shape == (16, SIZE, SIZE, 3)  # --both follows the output's format
    assert "used frames 0..15" in r.output  # a 16-frame window of the 20-frame clips
    r = invoke("swap", a, b, "-o", tmp_path / "later.webm", "--start", 4, "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "later.webm").shape == (16, SIZE, SIZE, 3)
    r = invoke("swap", a, b, "-o", tmp_path / "late.gif", "--start", 5, "--model", run, "--device", "cpu")
    assert r.exit_code == 1 and "20 frames but the model needs 16" in r.output
    r = invoke("swap", a, b, "-o", tmp_path / "out.avi", "--model", run)
    assert r.exit_code == 1 and "must end in .gif or .mp4 or .webm" in r.output
    r = invoke("encode", a, "-o", tmp_path / "a.npz", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "a.npz") as z:
        assert z["z_mean"].shape[0] == 16


def test_generate_reconstruct_predict_with_a_16_frame_model(run16, tmp_path):
    run, clips = run16
    r = invoke("generate", "-n", 2, "-o", tmp_path / "gen.mp4", "--out-dir", tmp_path / "samples", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "gen.mp4").shape[0] == 16
    assert read_frames(tmp_path / "samples" / "sample_000.gif").shape == (16, SIZE, SIZE, 3)
    r = invoke("generate", "--fix", "motion", "--from", clips / "clip1.webm", "-n", 2, "-o", tmp_path / "gen.gif", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "gen.gif").shape[0] == 16
    r = invoke("reconstruct", clips / "clip2.mp4", "-o", tmp_path / "rec.webm", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "rec.webm").shape == (16, SIZE, SIZE, 3)
    r = invoke("predict", clips / "clip2.mp4", "--context", 4, "-o", tmp_path / "pred.mp4", "--model", run, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert read_frames(tmp_path / "pred.mp4").shape == (16, SIZE, SIZE, 3)


@pytest.mark.skipif(not (DEFAULT_MODELS["video"] / "config.json").is_file(), reason="no embedded video model")
def test_embedded_model_swaps_mp4_input_into_mp4_output(tmp_path):
    a = write_clip(tmp_path / "a.mp4", moving_square(12))
    b = write_clip(tmp_path / "b.mov", moving_square(10, background=(0, 0, 0), colour=(200, 40, 40)))
    r = invoke("swap", a, b, "-o", tmp_path / "out.mp4", "--grid", tmp_path / "out.png", "--device", "cpu")
    assert r.exit_code == 0, r.output
    out = read_frames(tmp_path / "out.mp4")
    assert out.shape == (8, 64, 64, 3) and out.std() > 5
    assert (tmp_path / "out.png").is_file()


def test_broken_video_input_is_a_one_line_cli_error(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    good = write_clip(tmp_path / "good.mp4", moving_square(8))
    r = invoke("swap", bad, good, "-o", tmp_path / "out.mp4", "--device", "cpu")
    assert r.exit_code == 1
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "broken.mp4" in lines[0], r.output
    assert not (tmp_path / "out.mp4").exists()


def test_empty_folder_message_names_video_files(tmp_path):
    (tmp_path / "none").mkdir()
    r = invoke("train", "--data", tmp_path / "none", "--out", tmp_path / "run", "--recipe", "tiny", "--steps", 1)
    assert r.exit_code == 1 and ".mp4" in r.output
