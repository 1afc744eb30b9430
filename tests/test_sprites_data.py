"""Tests of the Sprites data-set builder (dsae_cli/data/sprites.py, sprites_files.py) and ``dsae data sprites``.

The whole set builds in a few seconds, so one module-scoped fixture builds it once. Pixels are
checked against an independent reference: Pillow's ``Image.alpha_composite`` on full layer
sheets read from the embedded assets (no /work/shared needed).
"""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from dsae_cli.data import sprites as sp
from dsae_cli.data.sprites_files import load_sprites_npz, write_sprites_gifs, write_sprites_npz
from dsae_cli.errors import DsaeError

# README appendix: SHA-1 of each layer file (byte copies of Universal-LPC-spritesheet @ 2668274d)
LAYER_SHA1 = {
    "body/male/light.png": "235128f384d603ba5e52cd44ab66f6fb572329cc",
    "body/male/tanned2.png": "e7c4485103246a114c0b3e75644e4db40bae33c2",
    "body/male/darkelf.png": "fc0a92b20b1adb790309d566a3b96884043d5af8",
    "body/male/darkelf2.png": "2e702028456be89845571132413d9377602bdfd9",
    "body/male/dark.png": "72ecab0e77b6c968ee2c738d79da5888ddb25f26",
    "body/male/dark2.png": "22cd5fb9f40519ccd280f65747fbef7759e224ca",
    "legs/pants/male/white_pants_male.png": "d72baf3fc4c4d5b02ebd7728a138ed4c801c0f68",
    "legs/armor/male/golden_greaves_male.png": "04bd12d25e26c0e5bad1cae0f0b46aabb7856ad1",
    "legs/pants/male/red_pants_male.png": "627227e7a967cf03ad65c64bd48a1b121343522e",
    "legs/armor/male/metal_pants_male.png": "1fdbd80b80bb2e1744cba694ce8db88e1639d5e2",
    "legs/pants/male/teal_pants_male.png": "2fcdbbd0d64d9b71e0f8dcd206f59da30ede9fe5",
    "formal_male_no_th-sh/pants.png": "e5789a9b1b62737c88b03e56063d2634c7de7124",
    "torso/shirts/longsleeve/male/maroon_longsleeve.png": "a3c59d8605af5c762c0426c846334ff214c5082e",
    "torso/shirts/longsleeve/male/teal_longsleeve.png": "f8969efe1b2bfa58091b5c1cf9f8000d7d379d45",
    "torso/shirts/longsleeve/male/white_longsleeve.png": "a3f895698e061feed0662da3808b3245c7cab962",
    "torso/plate/chest_male.png": "43ac32c1177c2526b0a98422de6874f2859c2772",
    "torso/leather/chest_male.png": "46a342fb9a860f80c1ecad007220ed0d0d3f6791",
    "formal_male_no_th-sh/shirt.png": "cb268c68ce63d650ef4b1cd83db50fe02b26c972",
    "formal_male_no_th-sh/tie.png": "83ee546efa48b1562d61c0ddb20a01b9587e4c7c",
    "hair/male/messy2/green2.png": "dbca52a73d8489ed2220fb63d31cee70bbc9d606",
    "hair/male/longknot/blue2.png": "856822d807afd73b4306e8771be157d0733f3b94",
    "hair/male/messy1/light-blonde.png": "7d6228ecfa490c58163b0dd2e1a0ee853399b6c2",
    "hair/male/bangs/white.png": "3de3aba3c3b7b523c929658bfa84fb5c5659c833",
    "hair/male/plain/ruby-red.png": "12ed1522830205b01fe7e91e558b8fce4397f49e",
    "hair/male/jewfro/purple.png": "bdd0ea75964e148327a494112708ae2a1ed7e931",
    "feet/armor/male/golden_boots_male.png": "78851e3721e58cfc39f5475cc11dc677a827f056",
}
TEST_IDS_SHA1 = "fa3fece4a72c6c9900c7bc2b096b763e0dd4f7d3"
# SHA-1 of the whole x array of build_sprites(): a regression fingerprint of every pixel
X_SHA1 = "fd66a44b30353309faad4110a0bb4be07e9dfad4"

# Characters for the pixel checks: every variant of every attribute appears, including the
# layers with semi-transparent pixels (light and darkelf2 skins, teal pants, long-sleeve shirts,
# plate and leather chests) and top 5 (shirt + tie).
SAMPLE_IDS = [
    sp.character_id(0, 0, 0, 0),
    sp.character_id(1, 1, 1, 1),
    sp.character_id(2, 2, 2, 2),
    sp.character_id(3, 3, 3, 3),
    sp.character_id(4, 4, 4, 4),
    sp.character_id(5, 5, 5, 5),
    sp.character_id(3, 4, 5, 0),
    sp.character_id(0, 4, 3, 5),
]


def reference_sheet(char_id: int) -> np.ndarray:
    """The composited RGB sheet (1344, 832, 3) of a character, made the plain Pillow way."""
    skin, pants, top, hair = sp.character_attributes(char_id)
    canvas = Image.new("RGBA", (832, 1344), (0, 0, 0, 255))
    for relpath in sp.SKINS[skin] + sp.PANTS[pants] + sp.TOPS[top] + sp.HAIRS[hair] + sp.BOOTS:
        with Image.open(sp.assets_dir() / relpath) as layer:
            canvas = Image.alpha_composite(canvas, layer.convert("RGBA"))
    rgba = np.asarray(canvas)
    assert (rgba[..., 3] == 255).all()
    return rgba[..., :3]


def reference_cell(sheet: np.ndarray, row: int, col: int) -> np.ndarray:
    return sheet[64 * row : 64 * row + 64, 64 * col : 64 * col + 64]


@pytest.fixture(scope="module")
def full():
    return sp.build_sprites()


@pytest.fixture(scope="module")
def sample():
    return sp.build_characters(SAMPLE_IDS)


# --- assets ----------------------------------------------------------------------------------


def test_embedded_layers_are_the_upstream_files():
    root = sp.assets_dir()
    for relpath, sha1 in LAYER_SHA1.items():
        assert hashlib.sha1((root / relpath).read_bytes()).hexdigest() == sha1, relpath
    pngs = {p.relative_to(root).as_posix() for p in root.rglob("*.png")}
    assert pngs == set(LAYER_SHA1)
    for name in ("AUTHORS.txt", "cc-by-sa-3.0.txt", "gpl-3.0.txt", "README.md"):
        assert (root / name).is_file(), name


def test_layer_tables_use_exactly_the_embedded_files():
    used = [f for table in (sp.SKINS, sp.PANTS, sp.TOPS, sp.HAIRS) for entry in table for f in entry] + list(sp.BOOTS)
    assert sorted(used) == sorted(LAYER_SHA1)
    assert all(len(table) == 6 for table in (sp.SKINS, sp.PANTS, sp.TOPS, sp.HAIRS))
    assert sp.TOPS[5] == ("formal_male_no_th-sh/shirt.png", "formal_male_no_th-sh/tie.png")
    assert all(len(sp.LOOKS[name]) == 6 for name in sp.ATTRIBUTE_NAMES)


# --- recipe constants ------------------------------------------------------------------------


def test_character_id_round_trip():
    ids = [sp.character_id(s, p, t, h) for s in range(6) for p in range(6) for t in range(6) for h in range(6)]
    assert ids == list(range(1296))
    for char_id in range(1296):
        assert sp.character_id(*sp.character_attributes(char_id)) == char_id
    assert sp.character_attributes(sp.character_id(2, 3, 4, 5)) == (2, 3, 4, 5)
    with pytest.raises(ValueError):
        sp.character_id(6, 0, 0, 0)
    with pytest.raises(ValueError):
        sp.character_attributes(1296)


def test_motion_labels_rows_and_columns():
    assert sp.ACTION_NAMES == (
        "walk-front", "walk-left", "walk-right",
        "spellcast-front", "spellcast-left", "spellcast-right",
        "slash-front", "slash-left", "slash-right",
    )  # fmt: skip
    # label 3*action + direction; rows from README section 5 (listed there as left, front, right)
    expected_rows = [10, 9, 11, 2, 1, 3, 14, 13, 15]
    expected_cols = [(8, 1, 2, 3, 4, 5, 6, 7)] * 3 + [(0, 1, 2, 3, 4, 5, 4, 6)] * 3 + [(0, 1, 2, 3, 4, 5, 4, 0)] * 3
    for label, cells in enumerate(sp.MOTION_CELLS):
        assert [r for r, _ in cells] == [expected_rows[label]] * 8
        assert tuple(c for _, c in cells) == expected_cols[label]
    assert len(sp.USED_CELLS) == 63
    assert sp.FRAME_CELL_INDEX.shape == (9, 8)


def test_split_matches_the_original_seed_and_leaves_global_rng_alone():
    np.random.seed(12345)
    before = np.random.get_state()[1].copy()
    train, test = sp.split_character_ids()
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.random.RandomState(423).permutation(1296)[:5].tolist() == [1116, 1135, 17, 469, 1293]
    assert len(train) == 1000 and len(test) == 296
    assert sorted(set(train.tolist()) | set(test.tolist())) == list(range(1296))
    assert hashlib.sha1(" ".join(map(str, test.tolist())).encode()).hexdigest() == TEST_IDS_SHA1
    # the same as the original's global-RNG call
    state = np.random.get_state()
    try:
        np.random.seed(423)
        perm = np.random.permutation(1296)
    finally:
        np.random.set_state(state)
    assert np.array_equal(np.sort(perm[1000:]), test)


# --- compositing -----------------------------------------------------------------------------


def test_over_matches_pillow_for_every_src_dst_alpha():
    """The uint16 formula equals Pillow's alpha_composite over an opaque pixel, all 2**24 cases."""
    src, dst, alpha = (a.ravel().astype(np.uint8) for a in np.meshgrid(*[np.arange(256)] * 3, indexing="ij"))
    src_img = np.stack([src, src, src, alpha], -1).reshape(4096, 4096, 4)
    dst_img = np.stack([dst, dst, dst, np.full_like(dst, 255)], -1).reshape(4096, 4096, 4)
    expected = np.asarray(Image.alpha_composite(Image.fromarray(dst_img), Image.fromarray(src_img))).reshape(-1, 4)
    assert (expected[:, 3] == 255).all()

    a16 = alpha.astype(np.uint16)[:, None]
    layer = sp._SparseLayer(np.arange(src.size), np.repeat(src[:, None], 3, 1).astype(np.uint16) * a16, 255 - a16)
    pixels = np.repeat(dst[:, None], 3, 1)
    sp._composite_over_opaque(pixels, layer)
    assert np.array_equal(pixels, expected[:, :3])


def test_sample_characters_match_pillow_reference(sample):
    for k, char_id in enumerate(SAMPLE_IDS):
        sheet = reference_sheet(char_id)
        for label in range(9):
            seq = sample["x"][9 * k + label]
            for t, (row, col) in enumerate(sp.MOTION_CELLS[label]):
                assert np.array_equal(seq[t], reference_cell(sheet, row, col)), (char_id, label, t)


def test_subset_build_equals_full_build_rows(full, sample):
    rows = np.concatenate([9 * np.int64(c) + np.arange(9) for c in SAMPLE_IDS])
    for key in sp.DATA_KEYS:
        assert np.array_equal(sample[key], full[key][rows]), key


def test_build_is_deterministic_and_order_independent(sample):
    again = sp.build_characters(SAMPLE_IDS[::-1])
    n = len(SAMPLE_IDS)
    for k in range(n):
        mine = slice(9 * k, 9 * k + 9)
        theirs = slice(9 * (n - 1 - k), 9 * (n - k))
        for key in sp.DATA_KEYS:
            assert np.array_equal(sample[key][mine], again[key][theirs]), key


def test_build_characters_rejects_bad_ids():
    with pytest.raises(ValueError):
        sp.build_characters([1296])
    with pytest.raises(ValueError):
        sp.build_characters([-1])


# --- the full set ----------------------------------------------------------------------------


def test_full_shapes_and_dtypes(full):
    assert set(full) == set(sp.DATA_KEYS)
    assert full["x"].dtype == np.uint8 and full["x"].shape == (11664, 8, 64, 64, 3)
    for key in sp.LABEL_KEYS:
        assert full[key].dtype == np.int64 and full[key].shape == (11664,), key
    assert full["split"].dtype.kind == "U" and full["split"].shape == (11664,)


def test_full_order_and_labels(full):
    row = np.arange(11664)
    assert np.array_equal(full["char_id"], row // 9)
    assert np.array_equal(full["action"], row % 9)
    decomposed = np.array([sp.character_attributes(c) for c in full["char_id"]])
    for i, name in enumerate(sp.ATTRIBUTE_NAMES):
        assert np.array_equal(full[name], decomposed[:, i]), name
        assert np.bincount(full[name]).tolist() == [1944] * 6, name
    assert np.bincount(full["action"]).tolist() == [1296] * 9


def test_full_split(full):
    split = full["split"]
    assert (split == "train").sum() == 9000 and (split == "test").sum() == 2664
    _, test_ids = sp.split_character_ids()
    assert np.array_equal(np.unique(full["char_id"][split == "test"]), test_ids)
    # by character: all 9 motions of a character share its split
    assert (split.reshape(1296, 9) == split.reshape(1296, 9)[:, :1]).all()
    assert hashlib.sha1(" ".join(map(str, test_ids.tolist())).encode()).hexdigest() == TEST_IDS_SHA1


def test_full_pixels(full):
    x = full["x"]
    # black background: no character reaches the top-left corner of its cell
    assert (x[:, :, :2, :2] == 0).all()
    assert 0.7 < (x[::10] == 0).all(-1).mean() < 0.85  # mostly background
    # frames as 1536 uint64 words: exact comparisons 8x faster than per byte
    words = x.reshape(11664, 8, -1).view(np.uint64)
    assert words.any(-1).all()  # a character in every frame
    # no sequence has two identical consecutive frames (Pillow would merge them in a GIF)
    assert (words[:, 1:] != words[:, :-1]).any(-1).all()
    # a known pixel: character 700 = (3, 1, 2, 4), spellcast-front, frame 2, centre
    assert x[9 * 700 + 3, 2, 32, 32].tolist() == [201, 208, 238]
    assert hashlib.sha1(x.tobytes()).hexdigest() == X_SHA1


def test_full_cells_of_known_characters(full):
    for char_id in (5, 1000, 1295):  # a test character, a train character, the last one
        sheet = reference_sheet(char_id)
        for label in range(9):
            for t, (row, col) in enumerate(sp.MOTION_CELLS[label]):
                assert np.array_equal(full["x"][9 * char_id + label, t], reference_cell(sheet, row, col))


def test_progress_called_per_character():
    calls = []
    sp.build_characters([0, 1, 2], progress=calls.append)
    assert calls == [1, 1, 1]


# --- files -----------------------------------------------------------------------------------


def test_npz_round_trip(tmp_path, sample):
    path = write_sprites_npz(tmp_path / "s.npz", sample)
    assert path == tmp_path / "s.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temp file left behind
    loaded = load_sprites_npz(path)
    for key in sp.DATA_KEYS:
        assert np.array_equal(loaded[key], sample[key]) and loaded[key].dtype == sample[key].dtype, key


def test_npz_name_without_suffix_is_kept(tmp_path, sample):
    path = write_sprites_npz(tmp_path / "sprites.data", sample)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sprites.data"]
    assert np.array_equal(load_sprites_npz(path)["x"], sample["x"])


def _one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and "dsae data sprites" in msg
    return msg


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda d: d.pop("hair"), "missing hair"),
        (lambda d: d.update(x=d["x"].astype(np.float32)), "x must be uint8"),
        (lambda d: d.update(x=d["x"][:, :4]), "x must be uint8"),
        (lambda d: d.update(skin=d["skin"][:5]), "skin must be integers"),
        (lambda d: d.update(action=d["action"] + 9), "action labels"),
        (lambda d: d.update(char_id=d["char_id"] + 1), "char_id does not match"),
        (lambda d: d.update(split=np.full(len(d["x"]), "val")), "split must be"),
    ],
)
def test_load_rejects_bad_files(tmp_path, sample, change, words):
    data = {key: sample[key][:18] for key in sp.DATA_KEYS}
    change(data)
    path = tmp_path / "bad.npz"
    np.savez(path, **data)
    with pytest.raises(DsaeError, match=words) as excinfo:
        load_sprites_npz(path)
    _one_line_error(excinfo)


def test_load_rejects_missing_npy_and_garbage(tmp_path):
    with pytest.raises(DsaeError, match="not found") as excinfo:
        load_sprites_npz(tmp_path / "nope.npz")
    _one_line_error(excinfo)
    np.save(tmp_path / "arr.npy", np.zeros(3))
    with pytest.raises(DsaeError, match="single array") as excinfo:
        load_sprites_npz(tmp_path / "arr.npy")
    _one_line_error(excinfo)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DsaeError, match="cannot read") as excinfo:
        load_sprites_npz(tmp_path / "junk.npz")
    _one_line_error(excinfo)
    # a file cut short mid-write (what atomic writing prevents)
    write_sprites_npz(tmp_path / "whole.npz", sp.build_characters([0]))
    (tmp_path / "junk.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:5000])
    with pytest.raises(DsaeError, match="cannot read") as excinfo:
        load_sprites_npz(tmp_path / "junk.npz")
    _one_line_error(excinfo)


def test_gifs_and_labels_csv(tmp_path):
    import imageio.v3 as iio

    data = sp.build_characters([5, 1295])  # one test and one train character
    calls = []
    labels = write_sprites_gifs(tmp_path / "gifs", data, progress=calls.append)
    assert labels == tmp_path / "gifs" / "labels.csv" and calls == [1] * 18
    with open(labels, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["file", "char_id", "split", "skin", "pants", "top", "hair", "action", "action_name"]
    assert len(rows) == 18
    assert rows[0]["file"] == "test/0005_skin0_pants0_top0_hair5_walk-front.gif"
    assert rows[-1]["file"] == "train/1295_skin5_pants5_top5_hair5_slash-right.gif"
    for i, row in enumerate(rows):
        assert int(row["char_id"]) == data["char_id"][i] and row["split"] == data["split"][i]
        assert int(row["action"]) == data["action"][i] and row["action_name"] == sp.ACTION_NAMES[data["action"][i]]
        assert [int(row[k]) for k in sp.ATTRIBUTE_NAMES] == list(sp.character_attributes(data["char_id"][i]))
        frames = iio.imread(tmp_path / "gifs" / row["file"], index=None)[..., :3]
        assert np.array_equal(frames, data["x"][i]), row["file"]  # GIF palette is lossless here
    assert iio.immeta(tmp_path / "gifs" / rows[0]["file"])["loop"] == 0


def test_no_torch_import():
    code = "import sys, dsae_cli.data.sprites, dsae_cli.data.sprites_files, dsae_cli.commands.data; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- CLI -------------------------------------------------------------------------------------


def _cli():
    import typer

    from dsae_cli.commands import data

    main = typer.Typer()  # mirrors how the app registers it: `dsae data sprites`
    main.add_typer(data.app, name="data")

    @main.callback()
    def _root():
        pass

    return main


@pytest.mark.parametrize(
    "args, words",
    [
        (["-o", "{tmp}/missing/out.npz"], "does not exist"),
        (["-o", "{tmp}/out.txt"], "must end in .npz"),
        (["-o", "{tmp}/out.npz", "--gifs", "{tmp}/afile"], "is a file"),
        (["-o", "{tmp}/out.npz", "--gifs", "{tmp}/missing/gifs"], "does not exist"),
    ],
)
def test_cli_rejects_bad_outputs_before_building(tmp_path, args, words):
    from typer.testing import CliRunner

    (tmp_path / "afile").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(_cli(), ["data", "sprites", *args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
    assert not (tmp_path / "out.npz").exists()


def test_cli_help():
    from typer.testing import CliRunner

    result = CliRunner().invoke(_cli(), ["data", "sprites", "--help"])
    assert result.exit_code == 0 and "--output" in result.output and "--gifs" in result.output


@pytest.mark.slow
def test_cli_builds_the_whole_set(tmp_path):
    from typer.testing import CliRunner

    out = tmp_path / "sprites.npz"
    result = CliRunner().invoke(_cli(), ["data", "sprites", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "11664 sequences" in result.output and "train 9000, test 2664" in result.output
    data = load_sprites_npz(out)
    assert hashlib.sha1(data["x"].tobytes()).hexdigest() == X_SHA1
