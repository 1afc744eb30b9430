"""The Python API: the README's example runs as written, and the commands' output folders."""

import os
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from dsae_cli.app import app

ROOT = Path(__file__).resolve().parent.parent


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def readme_python_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_python_example_runs_as_written(tmp_path, monkeypatch):
    code = readme_python_example()
    assert 5 <= len(code.strip().splitlines()) <= 12
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    import dsae_cli as dsae

    swap = dsae.read_video(tmp_path / "swap.gif")
    assert swap.shape == (8, 64, 64, 3) and swap.std() > 10  # a drawn figure, not an empty frame
    written = sorted(p.name for p in tmp_path.iterdir() if p.name != "examples")
    assert {"swap.gif", "variations.gif", "converted.wav"} <= set(written), written


def test_api_swap_equals_the_command(sprite_gifs, tmp_path):
    import dsae_cli as dsae

    a, b = sorted(Path(sprite_gifs).glob("*.gif"))[:2]
    model = dsae.load("sprites", device="cpu")
    mine = model.swap(dsae.read_video(a), dsae.read_video(b))
    assert invoke("swap", a, b, "-o", tmp_path / "cli.gif", "--device", "cpu").exit_code == 0
    dsae.write_gif(tmp_path / "api.gif", mine)  # the same frames make the same (palette-quantised) GIF
    assert np.array_equal(dsae.read_video(tmp_path / "cli.gif"), dsae.read_video(tmp_path / "api.gif"))
    clip = model.clip(a)
    assert clip.frames.shape == (8, 64, 64, 3) and set(clip.latents) == {"f_mean", "f_logvar", "z_mean", "z_logvar"}
    assert model.generate("content", n=3, source=clip).shape == (3, 8, 64, 64, 3)


def test_generate_out_dir_is_created_and_kept_unless_overwrite(tmp_path):
    out = tmp_path / "new" / "samples"
    r = invoke("generate", "-n", 2, "--out-dir", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["sample_000.gif", "sample_001.gif"]
    before = (out / "sample_000.gif").read_bytes()
    r = invoke("generate", "-n", 2, "--out-dir", out, "--seed", 5, "--device", "cpu")
    assert r.exit_code == 1 and "--overwrite" in r.output and (out / "sample_000.gif").read_bytes() == before
    r = invoke("generate", "-n", 2, "--out-dir", out, "--seed", 5, "--overwrite", "--device", "cpu")
    assert r.exit_code == 0 and (out / "sample_000.gif").read_bytes() != before
