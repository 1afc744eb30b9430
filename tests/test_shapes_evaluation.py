"""Judges and the judged evaluation for any benchmark (Sprites, Moving shapes): judge configs with their
heads as data (and old Sprites configs), a shapes judge trained a few steps, ``evaluate_benchmark`` and
``dsae evaluate shapes`` on tiny untrained models, refusals of a judge of another benchmark, and the
Moving shapes table of docs/render.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dsae_cli.app import app
from dsae_cli.checkpoint import save_model, write_checkpoint
from dsae_cli.data.shapes import shapes_split
from dsae_cli.errors import DsaeError
from dsae_cli.evaluate import judge as judge_io
from dsae_cli.evaluate.judge import load_judge, save_judge, train_judge
from dsae_cli.evaluate.report import markdown_report
from dsae_cli.evaluate.sprites import evaluate_benchmark, evaluate_sprites
from models import DSAE, DSAEConfig
from models.judge import BENCHMARK_HEADS, HEADS, Judge, JudgeConfig

runner = CliRunner()
TINY_JUDGE = dict(frame_size=64, conv_width=2, embed_dim=8, lstm_hidden=8, head_hidden=8)
SHAPES_HEADS = ("action", "shape", "colour", "background")


def tiny_judge(benchmark: str = "shapes") -> Judge:
    torch.manual_seed(0)
    return Judge(JudgeConfig(**TINY_JUDGE, **BENCHMARK_HEADS[benchmark])).eval()


def in_unit(ms) -> bool:
    return set(ms) == {"mean", "std"} and -1e-9 <= ms["mean"] <= 1 + 1e-9 and ms["std"] >= 0


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    """An untrained tiny 64x64 DSAE and an untrained tiny shapes judge, saved, and 64 val sequences (two contents)."""
    root = tmp_path_factory.mktemp("shapes")
    torch.manual_seed(0)
    save_model(DSAE(DSAEConfig(frame_size=64, seq_len=8, f_dim=4, z_dim=2, hidden_dim=8, feature_dim=8, conv_width=2)), root / "model")
    save_judge(tiny_judge(), root / "judge")
    return root / "model", root / "judge", shapes_split("val", limit=64)


@pytest.fixture(scope="module")
def shapes_result(tiny_shapes):
    """evaluate_benchmark of the tiny pair on the 64 val sequences."""
    from dsae_cli.checkpoint import load_model

    return evaluate_benchmark(load_model(tiny_shapes[0]), load_judge(tiny_shapes[1]), tiny_shapes[2], repeats=2, batch_size=32)


# ------------------------------------------------------------------------------------- judge configs


def test_judge_config_heads_are_data_and_round_trip():
    cfg = JudgeConfig(**TINY_JUDGE, **BENCHMARK_HEADS["shapes"])
    assert cfg.heads == SHAPES_HEADS and cfg.classes == {"action": 8, "shape": 6, "colour": 6, "background": 6}
    d = json.loads(json.dumps(cfg.to_dict()))  # as saved: the attributes are a JSON list
    assert d["attributes"] == ["shape", "colour", "background"] and JudgeConfig.from_dict(d) == cfg
    out = Judge(cfg)(torch.rand(2, 3, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"action": (2, 8), "shape": (2, 6), "colour": (2, 6), "background": (2, 6)}
    assert JudgeConfig().heads == HEADS  # the default is Sprites'
    for bad in ((), ("shape", "shape"), ("action", "shape"), "shape", ("", "x")):
        with pytest.raises(ValueError):
            JudgeConfig(attributes=bad)


def test_old_judge_configs_load_as_sprites_judges(tmp_path):
    """A config.json written before the heads were data (no "attributes") loads unchanged as a Sprites judge."""
    shipped = json.loads((judge_io.DEFAULT_JUDGE / "config.json").read_text())
    assert "attributes" not in shipped["config"]
    assert JudgeConfig.from_dict(shipped["config"]).heads == HEADS
    judge = tiny_judge("sprites")
    meta = {
        "format": "dsae-judge", "format_version": 1, "library_version": "0.1.0", "class": "Judge",
        "heads": judge.config.classes, "config": {k: v for k, v in judge.config.to_dict().items() if k != "attributes"},
    }  # fmt: skip
    write_checkpoint(judge.state_dict(), meta, tmp_path / "old")
    loaded = load_judge(tmp_path / "old")
    assert loaded.config == judge.config and loaded.config.heads == HEADS
    x = torch.rand(2, 4, 3, 64, 64)
    for h, p in judge.probabilities(x).items():
        assert torch.equal(p, loaded.probabilities(x)[h])


# ------------------------------------------------------------------------------------- judge training


def test_shapes_judge_trains_on_the_shapes_heads():
    train = shapes_split("train", limit=64)
    test = shapes_split("test", limit=32)
    config = JudgeConfig(**TINY_JUDGE, **BENCHMARK_HEADS["shapes"])
    judge, summary = train_judge(train, test, config, epochs=1, batch_size=32)
    assert summary["steps"] == 2 and summary["n_train"] == 64 and summary["n_test"] == 32
    assert tuple(summary["test_accuracy"]) == SHAPES_HEADS and all(0 <= v <= 1 for v in summary["test_accuracy"].values())
    with pytest.raises(DsaeError, match="no skin, pants, top, hair labels"):
        train_judge(train, test, JudgeConfig(**TINY_JUDGE), epochs=1, batch_size=32)


def test_judge_train_cli_shapes(tmp_path):
    out = tmp_path / "judge"
    args = ["judge", "train", "--data", "shapes", "-o", out, "--epochs", 1, "--limit", 16, "--batch-size", 8, "--device", "cpu"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    assert "Moving shapes" in result.output
    meta = json.loads((out / "config.json").read_text())
    assert tuple(meta["test_accuracy"]) == SHAPES_HEADS and meta["heads"] == {"action": 8, "shape": 6, "colour": 6, "background": 6}
    assert meta["training"]["steps"] == 2 and meta["training"]["data"] == "shapes"
    assert load_judge(out).config.heads == SHAPES_HEADS
    bad = runner.invoke(app, ["judge", "train", "--data", "mnist", "-o", str(tmp_path / "j2"), "--limit", "9"])
    assert bad.exit_code == 1 and "unknown --data" in bad.output


# ------------------------------------------------------------------------------------- evaluation


KEYS = ("swap", "static_acc", "action_standard", "action_fitted", "recon_acc", "judge_acc_data", "model_id", "judge_id", "split")


def test_evaluate_benchmark_on_shapes(tiny_shapes, shapes_result):
    assert len(np.unique(tiny_shapes[2].labels["content_id"])) == 2  # the swaps pair across two contents
    r = shapes_result
    for key in KEYS:
        assert key in r, key
    assert r["split"] == "val" and r["benchmark"] == "shapes" and r["n_test"] == 64 and len(r["model_id"]) == 16
    assert set(r["swap"]) == {"shape", "colour", "background", "all", "action"}
    assert set(r["static_acc"]) == {"shape", "colour", "background", "all"}
    assert set(r["recon_acc"]) == set(r["judge_acc_data"]) == set(SHAPES_HEADS)
    assert all(in_unit(v) for v in (*r["swap"].values(), *r["static_acc"].values(), *r["recon_acc"].values(), *r["judge_acc_data"].values()))
    assert in_unit(r["action_standard"]["acc"]) and r["action_fitted"] is None
    assert set(r["paper_table"]) == set(SHAPES_HEADS)
    assert np.asarray(r["confusion"]["swap"]["shape"]).sum() == 64
    text = markdown_report(r)
    assert "## Moving shapes evaluation" in text and "| shape | colour | background | all three | action |" in text
    assert evaluate_sprites is evaluate_benchmark


def test_swap_rounds_extend_the_first_set_of_pairs(tiny_shapes, shapes_result):
    """Several sets of swap pairs: the figures are their mean and std, and the first set alone is the
    single-round result."""
    from dsae_cli.checkpoint import load_model
    from dsae_cli.evaluate.metrics import SWAP_SEED, swap_pairs

    data = tiny_shapes[2]
    r = evaluate_benchmark(load_model(tiny_shapes[0]), load_judge(tiny_shapes[1]), data, repeats=1, batch_size=32, swap_rounds=3)
    assert r["swap_rounds"] == 3 and shapes_result["swap_rounds"] == 1
    assert np.asarray(r["confusion"]["swap"]["shape"]).sum() == 3 * 64
    assert shapes_result["swap"]["all"]["std"] == 0.0
    assert all(in_unit(v) for v in r["swap"].values())
    ids, action = data.labels["content_id"], data.labels["action"]
    assert not np.array_equal(swap_pairs(ids, action, seed=SWAP_SEED), swap_pairs(ids, action, seed=SWAP_SEED + 1))
    first = evaluate_benchmark(load_model(tiny_shapes[0]), load_judge(tiny_shapes[1]), data, repeats=1, batch_size=32)
    assert first["swap"] == shapes_result["swap"]  # the swap test draws nothing: the same pairs, the same figures


def test_a_judge_of_another_benchmark_is_refused(tiny_shapes):
    from dsae_cli.checkpoint import load_model
    from dsae_cli.data.sprites import sprites_split

    model, data = load_model(tiny_shapes[0]), tiny_shapes[2]
    with pytest.raises(DsaeError, match="the judge scores action, skin, pants, top, hair but the Moving shapes sequences are labelled") as err:
        evaluate_benchmark(model, tiny_judge("sprites"), data, repeats=1)
    assert "\n" not in str(err.value) and "--data shapes" in str(err.value)
    with pytest.raises(DsaeError, match="the judge scores action, shape, colour, background but the Sprites sequences"):
        evaluate_benchmark(model, tiny_judge("shapes"), sprites_split("test", limit=18), repeats=1)
    wrong_k = Judge(JudgeConfig(**{**TINY_JUDGE, **BENCHMARK_HEADS["shapes"], "n_variants": 3})).eval()
    with pytest.raises(DsaeError, match="head has 3 classes"):
        evaluate_benchmark(model, wrong_k, data, repeats=1)


def test_evaluate_shapes_cli(tiny_shapes, monkeypatch, tmp_path):
    model, judge, _ = tiny_shapes
    help_ = runner.invoke(app, ["evaluate", "shapes", "--help"])
    assert help_.exit_code == 0 and "--model" in help_.output and "--split" in help_.output
    missing = runner.invoke(app, ["evaluate", "shapes", "--judge", str(judge)])
    assert missing.exit_code != 0 and "--model" in missing.output  # no shapes model ships
    base = ["evaluate", "shapes", "--model", str(model), "--limit", "64", "--repeats", "1", "--device", "cpu", "--batch-size", "32"]
    result = runner.invoke(app, base + ["--judge", str(judge), "--split", "val", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    assert r["split"] == "val" and r["judge_id"] and set(r["swap"]) == {"shape", "colour", "background", "all", "action"}
    table = runner.invoke(app, base + ["--judge", str(judge)])
    assert table.exit_code == 0 and "| shape | colour | background | all three |" in table.stdout
    # no shipped shapes judge: one line that says how to make one
    monkeypatch.setitem(judge_io.DEFAULT_JUDGES, "shapes", tmp_path / "none")
    nojudge = runner.invoke(app, base)
    assert nojudge.exit_code == 1 and "dsae judge train --data shapes --out DIR" in nojudge.output and "Traceback" not in nojudge.output
    sprites_judge = runner.invoke(app, base + ["--judge", str(judge_io.DEFAULT_JUDGE)])
    assert sprites_judge.exit_code == 1 and "the judge scores action, skin" in sprites_judge.output


# ------------------------------------------------------------------------------------- docs/render.py


def test_render_shows_a_moving_shapes_table(shapes_result, monkeypatch, tmp_path):
    spec = importlib.util.spec_from_file_location("docs_render", Path(__file__).parent.parent / "docs" / "render.py")
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    monkeypatch.setattr(render, "RESULTS", tmp_path)
    assert "Moving shapes" not in render.results_page()  # no file, no table
    (tmp_path / "shapes-val.json").write_text(json.dumps(shapes_result) + "\n")
    page = render.results_page()
    assert "## Moving shapes" in page and "| figure | val |" in page and "shapes-val.json" in page
    for row in ("swaps keep the content", "swaps keep the motion", "generation keeps the content", "swap: shape", "swap: background"):
        assert f"| {row}" in page, row
    assert "`clips` recipe on Moving shapes" in render.headline()
