"""Tests for dsae_cli.io.video and dsae_cli.io.media: reading every supported input, GIF/PNG round trips, windows and grids."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from dsae_cli.io import media
from dsae_cli.errors import DsaeError
from dsae_cli.io.media import (
    grid_animation,
    make_grid,
    resize_frames,
    select_window,
    sliding_windows,
    upscale,
    window_starts,
    write_gif,
    write_png,
)
from dsae_cli.io.video import read_frames


def sprite_frames(n: int = 8, size: int = 64) -> np.ndarray:
    """Sprite-like clip: few flat colours on black, a block walking right."""
    frames = np.zeros((n, size, size, 3), dtype=np.uint8)
    for t in range(n):
        x = 4 + 3 * t
        frames[t, 20:40, x : x + 12] = (200, 60, 30)
        frames[t, 22:26, x + 2 : x + 6] = (255, 230, 180)
        frames[t, 50:60, 10:20] = (0, 160, 255)
    return frames


def smooth_frames(n: int = 8, size: int = 64) -> np.ndarray:
    """Gradients with thousands of colours per frame, so GIF quantisation is lossy."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack(
        [np.stack([(x * 3 + t * 8) % 256, y * 3, (x + y) * 2 % 256], axis=-1) for t in range(n)]
    ).astype(np.uint8)


def assert_one_line_error(excinfo, *needles: str) -> None:
    message = str(excinfo.value)
    assert message and "\n" not in message
    for needle in needles:
        assert needle in message


# ----------------------------------------------------------------------------------------- GIF


def test_gif_round_trip_keeps_identical_consecutive_frames(tmp_path):
    frames = sprite_frames()
    frames[3] = frames[2]  # Pillow alone would merge these ...
    frames[6] = frames[5]
    frames[7] = frames[5]  # ... and these three into one
    path = tmp_path / "clip.gif"
    write_gif(path, frames, fps=8)
    back = read_frames(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    diff = np.abs(back.astype(int) - frames)
    # sprites are stored exactly; only the one nudged pixel per duplicate frame differs, by 1
    assert diff.max() <= 1
    # frame 7 equals the original frame 5 but no longer the nudged frame 6, so it stays exact
    changed = diff.any(axis=-1)
    assert [int(changed[t].sum()) for t in range(8)] == [0, 0, 0, 1, 0, 0, 1, 0]


def test_gif_of_one_repeated_frame_keeps_every_frame(tmp_path):
    frames = np.repeat(sprite_frames(1), 8, axis=0)
    write_gif(tmp_path / "still.gif", frames)
    assert read_frames(tmp_path / "still.gif").shape[0] == 8


def test_gif_loops_and_keeps_the_frame_rate(tmp_path):
    path = tmp_path / "clip.gif"
    write_gif(path, sprite_frames(6), fps=30)
    with Image.open(path) as im:
        assert im.info["loop"] == 0
        durations = []
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(im.info["duration"])
    assert len(durations) == 6
    assert sum(durations) == 200  # 6 frames at 30 fps, spread over 30/40 ms steps
    assert set(durations) <= {30, 40}


def test_gif_quantisation_of_smooth_images_is_close(tmp_path):
    frames = smooth_frames()
    write_gif(tmp_path / "smooth.gif", frames)
    back = read_frames(tmp_path / "smooth.gif")
    diff = np.abs(back.astype(int) - frames)
    assert back.shape == frames.shape
    assert diff.mean() < 6 and diff.max() < 32


def test_write_gif_rejects_bad_input(tmp_path):
    with pytest.raises(DsaeError) as excinfo:
        write_gif(tmp_path / "x.gif", sprite_frames(2), fps=0)
    assert_one_line_error(excinfo, "fps")
    with pytest.raises(DsaeError):
        write_gif(tmp_path / "x.gif", sprite_frames(2), fps=100)
    with pytest.raises(ValueError):
        write_gif(tmp_path / "x.gif", sprite_frames(2).astype(np.float32))
    with pytest.raises(DsaeError) as excinfo:
        write_gif(tmp_path / "missing" / "x.gif", sprite_frames(2))
    assert_one_line_error(excinfo, "does not exist")


def test_read_gif_composes_partial_frames_and_transparency(tmp_path):
    # Pillow's own default writer stores later frames as cropped deltas with transparent
    # unchanged pixels: reading must give back the full picture each time.
    frames = sprite_frames(4)
    path = tmp_path / "deltas.gif"
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    with Image.open(path) as im:
        im.seek(1)
        assert im.tile[0][1] != (0, 0, 64, 64)  # really a partial frame
    np.testing.assert_array_equal(read_frames(path), frames)


def test_read_gif_disposal_to_background_is_black(tmp_path):
    # frame 0: white square on transparent; frame 1 (after disposal 2): red square elsewhere
    first = Image.new("P", (16, 16), 0)
    first.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * 759)
    first.paste(1, (0, 0, 8, 8))
    second = first.copy()
    second.paste(0, (0, 0, 16, 16))
    second.paste(2, (8, 8, 16, 16))
    path = tmp_path / "dispose.gif"
    first.save(path, save_all=True, append_images=[second], transparency=0, disposal=2, duration=100, loop=0)
    back = read_frames(path)
    assert back.shape == (2, 16, 16, 3)
    assert (back[0, :8, :8] == 255).all() and (back[0, 8:, 8:] == 0).all()
    assert (back[1, :8, :8] == 0).all()  # the white square was disposed of
    assert (back[1, 8:, 8:] == (255, 0, 0)).all()


# ------------------------------------------------------------------------------- PNG and stills


def test_png_still_round_trip(tmp_path):
    image = smooth_frames(1)[0]
    write_png(tmp_path / "still.png", image)
    back = read_frames(tmp_path / "still.png")
    assert back.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(back[0], image)


def test_read_apng(tmp_path):
    frames = sprite_frames(5)
    images = [Image.fromarray(f) for f in frames]
    path = tmp_path / "clip.png"
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    np.testing.assert_array_equal(read_frames(path), frames)


def test_rgba_is_composited_over_black(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[0, :, 3] = 255
    rgba[1, :, 3] = 128
    rgba[2:, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    back = read_frames(tmp_path / "rgba.png")[0]
    assert (back[0] == (200, 100, 50)).all()
    assert np.abs(back[1].astype(int) - (100, 50, 25)).max() <= 1
    assert (back[2:] == 0).all()


@pytest.mark.parametrize("mode", ["L", "P", "LA", "1", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    grey = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
    base = Image.fromarray(grey)
    if mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 257)  # full 16-bit range
    elif mode == "1":
        image = base.convert("1", dither=Image.Dither.NONE)
    else:
        image = base.convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    image.save(path)
    back = read_frames(path)
    assert back.shape == (1, 16, 16, 3) and back.dtype == np.uint8
    assert (back[0, ..., 0] == back[0, ..., 1]).all() and (back[0, ..., 1] == back[0, ..., 2]).all()
    if mode == "1":
        assert set(np.unique(back)) <= {0, 255}
    else:
        assert np.abs(back[0, ..., 0].astype(int) - grey).max() <= 1


def test_folder_of_frames_in_natural_order(tmp_path):
    frames = sprite_frames(12, size=16)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"frame{i}.png")  # frame10 must come after frame9
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"junk from a file manager")
    np.testing.assert_array_equal(read_frames(tmp_path), frames)


def test_folder_accepts_mixed_formats(tmp_path):
    frames = sprite_frames(3, size=16)
    Image.fromarray(frames[0]).save(tmp_path / "a1.png")
    Image.fromarray(frames[1]).save(tmp_path / "a2.bmp")
    Image.fromarray(frames[2]).save(tmp_path / "a3.gif")
    np.testing.assert_array_equal(read_frames(tmp_path), frames)


# ------------------------------------------------------------------------------------ size guards


def test_huge_frames_are_shrunk_as_read(tmp_path):
    big = np.zeros((3, 600, 1200, 3), dtype=np.uint8)
    big[:, :300] = 255  # top half white
    big[:, -1, -1] = [[0, 0, 0], [50, 50, 50], [90, 90, 90]]  # differ, so no frame is merged
    images = [Image.fromarray(f) for f in big]
    path = tmp_path / "big.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=100, loop=0)
    back = read_frames(path, max_side=120)
    assert back.shape == (3, 60, 120, 3)
    assert (back[:, :29] == 255).all() and (back[:, 31:-1] == 0).all()


def test_too_many_frames_is_an_error(tmp_path):
    write_gif(tmp_path / "long.gif", sprite_frames(6, size=8))
    with pytest.raises(DsaeError) as excinfo:
        read_frames(tmp_path / "long.gif", max_frames=4)
    assert_one_line_error(excinfo, "more than 4 frames")
    with pytest.raises(DsaeError) as excinfo:
        read_frames(tmp_path / "long.gif", max_bytes=8 * 8 * 3 * 3)
    assert_one_line_error(excinfo, "too big")


# ------------------------------------------------------------------------------------ bad inputs


def _bad_inputs(tmp_path):
    good = tmp_path / "good.gif"
    write_gif(good, sprite_frames(8))
    data = good.read_bytes()
    png = tmp_path / "good.png"
    write_png(png, sprite_frames(1)[0])
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.new("RGB", (8, 8)).save(mixed / "f1.png")
    Image.new("RGB", (9, 8)).save(mixed / "f2.png")
    no_images = tmp_path / "no_images"
    no_images.mkdir()
    (no_images / "readme.txt").write_text("hi")
    files = {
        "empty.gif": b"",
        "text.gif": b"GIF? no, just some text\n",
        "truncated.gif": data[: len(data) // 2],
        "truncated.png": png.read_bytes()[:-40],
        # GIF has no checksums and Pillow decodes garbage LZW data quietly, so corruption is
        # only reliably detectable in PNG (CRC) or as truncation
        "corrupt.png": png.read_bytes()[:60] + bytes([png.read_bytes()[60] ^ 0xFF]) + png.read_bytes()[61:],
        "clip.mp4": b"\x00\x00\x00\x18ftypmp42 not really",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    return {
        "missing": (tmp_path / "nope.gif", "not found"),
        "empty": (tmp_path / "empty.gif", "empty"),
        "text": (tmp_path / "text.gif", "not an image"),
        "truncated gif": (tmp_path / "truncated.gif", "truncated or corrupt"),
        "truncated png": (tmp_path / "truncated.png", "truncated or corrupt"),
        "corrupt png": (tmp_path / "corrupt.png", "corrupt"),
        "video": (tmp_path / "clip.mp4", "ffmpeg"),
        "mixed sizes": (mixed, "differ in size"),
        "no images": (no_images, "no frame images"),
    }


def test_every_bad_input_is_a_one_line_error(tmp_path):
    for case, (path, needle) in _bad_inputs(tmp_path).items():
        with pytest.raises(DsaeError) as excinfo:
            read_frames(path)
        assert "\n" not in str(excinfo.value), case
        assert needle in str(excinfo.value), case
        assert str(path.name) in str(excinfo.value), case


# --------------------------------------------------------------------------------------- resizing


def test_resize_pads_non_square_to_black_square():
    frames = np.full((2, 4, 8, 3), 255, dtype=np.uint8)
    out = resize_frames(frames, 8)
    assert out.shape == (2, 8, 8, 3)
    assert (out[:, :2] == 0).all() and (out[:, 6:] == 0).all()  # black bars top and bottom
    assert (out[:, 2:6] == 255).all()


def test_resize_modes():
    frames = sprite_frames(2, size=16)
    assert resize_frames(frames, 16) is frames
    up = resize_frames(frames, 64)
    np.testing.assert_array_equal(up, upscale(frames, 4))  # whole factor: nearest, crisp
    down = resize_frames(up, 16)
    np.testing.assert_array_equal(down, frames)  # box average of 4x4 equal blocks
    odd = resize_frames(frames, 24)
    assert odd.shape == (2, 24, 24, 3) and odd.dtype == np.uint8


# --------------------------------------------------------------------------------------- windows


def test_select_window():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    assert select_window(frames, 8)[:, 0, 0, 0].tolist() == list(range(8))
    assert select_window(frames, 3, start=2, stride=3)[:, 0, 0, 0].tolist() == [2, 5, 8]
    with pytest.raises(DsaeError) as excinfo:
        select_window(frames[:5], 8, source="x.gif")
    assert_one_line_error(excinfo, "x.gif has 5 frames but the model needs 8")
    with pytest.raises(DsaeError) as excinfo:
        select_window(frames, 4, start=2, stride=3)
    assert_one_line_error(excinfo, "stride")
    with pytest.raises(DsaeError):
        select_window(frames, 0)


def test_sliding_windows_cover_every_frame():
    frames = np.arange(11, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), dtype=np.uint8)
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 2) == [0]
    windows = sliding_windows(frames, 4, 3)
    assert windows.shape == (4, 4, 2, 2, 3)
    assert windows[-1, :, 0, 0, 0].tolist() == [7, 8, 9, 10]
    with pytest.raises(DsaeError):
        sliding_windows(frames[:3], 4, 1)


# ----------------------------------------------------------------------------------------- grids


def test_make_grid_layout():
    a = np.zeros((3, 8, 8, 3), dtype=np.uint8)
    b = np.full((2, 8, 8, 3), 100, dtype=np.uint8)
    grid = make_grid([a, b], pad=2, bg=255)
    assert grid.shape == (2 + 2 * 10, 2 + 3 * 10, 3)
    assert (grid[2:10, 2:10] == 0).all()
    assert (grid[12:20, 22:30] == 255).all()  # short row padded with background
    assert (grid[12:20, 12:20] == 100).all()
    labelled = make_grid([a, b], labels=["original", "swap"])
    assert labelled.shape[0] == grid.shape[0] and labelled.shape[1] > grid.shape[1]
    label_area = labelled[:, : labelled.shape[1] - grid.shape[1]]
    assert (label_area < 128).any()  # some dark text was drawn on the white background


def test_grid_animation_layout():
    seqs = [np.full((4, 8, 8, 3), 10 * i, dtype=np.uint8) for i in range(5)]
    seqs[4] = seqs[4][:2]
    anim = grid_animation(seqs, pad=1)
    assert anim.shape == (4, 1 + 2 * 9, 1 + 3 * 9, 3)  # 5 tiles -> 3 columns, 2 rows
    assert (anim[:, 1:9, 10:18] == 10).all()
    assert (anim[3, 10:18, 10:18] == 40).all()  # short sequence holds its last frame
    assert (anim[:, 10:18, 19:27] == 255).all()  # empty sixth cell
    assert grid_animation(seqs, cols=5, pad=0).shape == (4, 8, 40, 3)


def test_upscale():
    image = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    big = upscale(image, 3)
    assert big.shape == (6, 6, 3)
    assert (big[:3, :3] == image[0, 0]).all()
    assert upscale(np.stack([image, image]), 2).shape == (2, 4, 4, 3)


# ------------------------------------------------------------------------------- atomic writing


def test_failed_write_leaves_existing_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "out.gif"
    write_gif(path, sprite_frames(2))
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as handle:
            handle.write(b"GIF89a half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        write_gif(path, sprite_frames(3))
    with pytest.raises(OSError):
        write_png(tmp_path / "out.gif", sprite_frames(1)[0])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.gif"]  # no temp files left behind


def test_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, dsae_cli.io.media, dsae_cli.io.video; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert media.__doc__


def test_to_uint8_clips_and_scales_floats():
    out = media.to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 2.0], dtype=np.float32))
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 128, 255, 255]
