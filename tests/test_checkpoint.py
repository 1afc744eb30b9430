"""Checkpoints: exact round trips, and clear refusals of damaged, foreign or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import moving_squares, tiny_model
from dsae_cli.checkpoint import load_model, save_model
from dsae_cli.data.sequences import video_batch
from dsae_cli.errors import DsaeError


@pytest.mark.parametrize("target", ["ckpt", "bundle.safetensors"])
def test_round_trip_gives_identical_outputs(tmp_path, target):
    model = tiny_model(posterior="full").eval()
    path = save_model(model, tmp_path / target)
    loaded = load_model(path)
    assert loaded.config == model.config
    x = video_batch(moving_squares(3))
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))
    torch.manual_seed(0)
    a = model.sample_z(2)
    torch.manual_seed(0)
    assert torch.equal(a, loaded.sample_z(2))
    assert len(loaded.model_id) == 16


def test_directory_layout_and_metadata(tmp_path):
    save_model(tiny_model(), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["format"] == "dsae-checkpoint" and meta["format_version"] == 1
    assert meta["modality"] == "video" and meta["config"]["f_dim"] == 6 and "library_version" in meta
    assert (tmp_path / "run" / "model.safetensors").is_file()


def _expect_error(path, match, **kw):
    with pytest.raises(DsaeError, match=match) as info:
        load_model(path, **kw)
    assert "\n" not in str(info.value)


def test_damaged_and_foreign_checkpoints_fail_clearly(tmp_path):
    run = save_model(tiny_model(), tmp_path / "run")
    _expect_error(tmp_path / "missing", "not found")
    _expect_error(tmp_path, "not a dsae checkpoint")  # a folder without the files
    # truncated weights
    w = run / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    _expect_error(run, "damaged")
    w.write_bytes(data)
    # damaged config.json
    cfg = run / "config.json"
    good = cfg.read_text()
    cfg.write_text(good[:20])
    _expect_error(run, "damaged")
    # unknown format version
    meta = json.loads(good)
    cfg.write_text(json.dumps({**meta, "format_version": 99}))
    _expect_error(run, "format version 99")
    # foreign json
    cfg.write_text(json.dumps({"hello": "world"}))
    _expect_error(run, "not a dsae checkpoint")
    # shapes that do not match the config
    meta["config"]["f_dim"] = 7
    cfg.write_text(json.dumps(meta))
    _expect_error(run, "does not match")
    # wrong modality for the command
    cfg.write_text(good)
    _expect_error(run, "video model but this command needs a speech model", modality="speech")
    # a random file
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    _expect_error(junk, "not a readable safetensors")


def test_non_finite_weights_are_refused(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    run = save_model(model, tmp_path / "run")
    _expect_error(run, "non-finite")


def test_safetensors_without_dsae_metadata(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    _expect_error(tmp_path / "other.safetensors", "not a dsae checkpoint")
