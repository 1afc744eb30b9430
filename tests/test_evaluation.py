"""The Sprites evaluation: every metric on inputs with known answers, the judge (shapes, checkpoints,
refusals), and ``dsae judge train`` / ``dsae evaluate sprites`` end to end on tiny models and a
handful of real test sequences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dsae_cli.evaluate import metrics as ev
from dsae_cli.app import app
from dsae_cli.checkpoint import load_model, save_model, write_checkpoint
from dsae_cli.errors import DsaeError
from dsae_cli.data.sprites import sprites_split
from dsae_cli.evaluate.judge import load_judge, save_judge
from models import DSAE, DSAEConfig
from models.judge import HEADS, Judge, JudgeConfig

runner = CliRunner()
K = 9
TINY_JUDGE = dict(frame_size=16, conv_width=2, embed_dim=8, lstm_hidden=8, head_hidden=8)


def one_hot(ids, k=K):
    return np.eye(k)[np.asarray(ids)]


# ------------------------------------------------------------------------------------- metrics


def test_perfect_model_scores():
    labels = np.repeat(np.arange(K), 4)
    s = ev.generation_scores(one_hot(labels), labels)
    assert s["acc"] == 1.0
    assert s["is"] == pytest.approx(K)
    assert s["h_yx"] == pytest.approx(0.0, abs=1e-12)
    assert s["h_y"] == pytest.approx(math.log(K))


def test_constant_model_scores():
    labels = np.repeat(np.arange(K), 4)
    s = ev.generation_scores(one_hot(np.zeros_like(labels)), labels)
    assert s["acc"] == pytest.approx(1 / K)
    assert s["is"] == pytest.approx(1.0)
    assert s["h_y"] == pytest.approx(0.0, abs=1e-12)
    assert s["h_yx"] == pytest.approx(0.0, abs=1e-12)


def test_uniform_model_scores():
    labels = np.repeat(np.arange(K), 4)
    s = ev.generation_scores(np.full((len(labels), K), 1 / K), labels)
    assert s["h_yx"] == pytest.approx(math.log(K))
    assert s["h_y"] == pytest.approx(math.log(K))
    assert s["is"] == pytest.approx(1.0)


def test_class_balanced_subset_takes_the_first_n_of_every_class():
    labels = np.array([0, 0, 1, 2, 2, 2, 1, 0])  # counts 3, 2, 3 -> n = 2
    assert ev.class_balanced_indices(labels).tolist() == [0, 1, 2, 3, 4, 6]
    assert ev.class_balanced_indices(np.array([], dtype=int)).tolist() == []
    # the subset matters: perfect predictions on imbalanced labels have IS < K, on the subset IS = K
    labels = np.array([0] * 5 + [1])
    assert ev.inception_score(one_hot(labels, 2)) < 2
    assert ev.generation_scores(one_hot(labels, 2), labels)["is"] == pytest.approx(2.0)
    # accuracy uses every sample, not only the subset
    assert ev.generation_scores(one_hot([0, 0, 0, 0, 0, 0], 2), labels)["acc"] == pytest.approx(5 / 6)


def test_kl_entropy_and_disagreement_on_hand_made_cases():
    p = np.array([[0.5, 0.5], [1.0, 0.0], [0.2, 0.8]])
    assert ev.kl_categorical(p, p) == pytest.approx([0, 0, 0], abs=1e-12)
    assert ev.kl_categorical([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert ev.kl_categorical([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1))
    assert ev.kl_categorical([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-16), rel=1e-6)  # eps 1e-16
    assert ev.entropy([0.5, 0.5]) == pytest.approx(math.log(2))
    q = np.array([[0.4, 0.6], [0.9, 0.1], [0.1, 0.9]])
    assert ev.disagreement(p[1:], q[1:]) == 0.0
    assert ev.disagreement(p, q) == pytest.approx(1 / 3)  # argmax of [0.5, 0.5] is 0, of [0.4, 0.6] is 1
    assert ev.disagreement(np.array([0, 1, 2]), np.array([0, 2, 2])) == pytest.approx(1 / 3)
    assert ev.accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5
    assert ev.joint_accuracy({"a": one_hot([0, 1], 2), "b": one_hot([1, 1], 2)}, {"a": np.array([0, 1]), "b": np.array([1, 0])}, ("a", "b")) == 0.5
    assert ev.mean_std([1.0, 3.0]) == {"mean": 2.0, "std": 1.0}


def test_paper_table_uses_the_latent_in_charge_of_each_attribute():
    n = 4
    truth = {h: np.zeros(n, dtype=int) for h in HEADS}
    data = {h: one_hot(truth[h], 6 if h != "action" else 9) for h in HEADS}
    other = {h: one_hot(np.ones(n, dtype=int), 6 if h != "action" else 9) for h in HEADS}
    # a perfectly disentangled model: resampling z (gen_z) keeps the appearance and changes the action,
    # resampling f (gen_f) keeps the action and changes the appearance
    gen_z = {h: (other[h] if h == "action" else data[h]) for h in HEADS}
    gen_f = {h: (data[h] if h == "action" else other[h]) for h in HEADS}
    table = ev.paper_table_scores(data, data, gen_f, gen_z)
    for h in HEADS:
        assert table[h]["disagreement"] == 0.0
        assert table[h]["kl_recon"] == pytest.approx(0.0, abs=1e-9)
        assert table[h]["kl_kept"] == pytest.approx(0.0, abs=1e-9)
        assert table[h]["kl_random"] == pytest.approx(-math.log(1e-16), rel=1e-6)
    # and the entangled opposite
    table = ev.paper_table_scores(data, data, gen_z, gen_f)
    assert all(table[h]["disagreement"] == 1.0 and table[h]["kl_random"] < 1e-9 for h in HEADS)


def test_confusion_counts_and_top_confusions():
    labels = np.array([0, 0, 0, 1, 1, 2])
    judged = np.array([0, 1, 1, 1, 1, 0])
    probs = np.eye(3)[judged]
    cm = ev.confusion(probs, labels)
    assert cm == [[1, 2, 0], [0, 2, 0], [1, 0, 0]]
    top = ev.top_confusions(cm, ("a", "b", "c"), n=5)
    assert top == [{"true": "a", "judged": "b", "count": 2, "share": round(2 / 3, 4)}, {"true": "c", "judged": "a", "count": 1, "share": 1.0}]
    assert ev.top_confusions([[3, 0], [0, 2]]) == []


def test_swap_pairs_are_fixed_and_cross_character_and_action():
    char_id = np.repeat(np.arange(5), 9)
    action = np.tile(np.arange(9), 5)
    a = ev.swap_pairs(char_id, action)
    assert np.array_equal(a, ev.swap_pairs(char_id, action))
    assert (char_id[a] != char_id).all() and (action[a] != action).all()
    with pytest.raises(DsaeError, match="two characters"):
        ev.swap_pairs(np.zeros(9, dtype=int), np.arange(9))


# ------------------------------------------------------------------------------------- the judge


def tiny_judge(**overrides) -> Judge:
    torch.manual_seed(0)
    return Judge(JudgeConfig(**{**TINY_JUDGE, **overrides})).eval()


def test_judge_shapes_any_length_and_loss():
    judge = tiny_judge()
    x = torch.rand(3, 4, 3, 16, 16)
    out = judge(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {"action": (3, 9), "skin": (3, 6), "pants": (3, 6), "top": (3, 6), "hair": (3, 6)}
    probs = judge.probabilities(x[:, :1])  # a one-frame prefix
    assert all(torch.allclose(p.sum(-1), torch.ones(3)) for p in probs.values())
    judge.train()
    labels = {h: torch.zeros(3, dtype=torch.long) for h in HEADS}
    loss = judge.loss(x, labels)
    loss["loss"].backward()
    assert torch.isfinite(loss["loss"]) and 0 <= float(loss["acc_skin"]) <= 1
    with pytest.raises(ValueError):
        JudgeConfig(frame_size=20)


def test_judge_round_trip_and_refusals(tmp_path):
    judge = tiny_judge()
    x = torch.rand(2, 4, 3, 16, 16)
    save_judge(judge, tmp_path / "judge", extra={"test_accuracy": {"skin": 1.0}})
    meta = json.loads((tmp_path / "judge" / "config.json").read_text())
    assert meta["format"] == "dsae-judge" and meta["heads"]["action"] == 9
    loaded = load_judge(tmp_path / "judge")
    assert loaded.config == judge.config and len(loaded.judge_id) == 16
    for h, p in judge.probabilities(x).items():
        assert torch.equal(p, loaded.probabilities(x)[h])
    # a DSAE is not a judge and a judge is not a DSAE
    save_model(DSAE(DSAEConfig(frame_size=16, seq_len=4, f_dim=4, z_dim=2, hidden_dim=8, feature_dim=8, conv_width=2)), tmp_path / "dsae")
    with pytest.raises(DsaeError, match="is a DSAE model, not a judge"):
        load_judge(tmp_path / "dsae")
    with pytest.raises(DsaeError, match="is a judge classifier"):
        load_model(tmp_path / "judge")
    with pytest.raises(DsaeError, match="not found"):
        load_judge(tmp_path / "missing")
    with pytest.raises(DsaeError, match="is a file"):
        load_judge(tmp_path / "judge" / "config.json")
    # the metadata packed with the weights is the one read (config.json is the copy for people)
    write_checkpoint(judge.state_dict(), {**meta, "format_version": 99}, tmp_path / "judge")
    with pytest.raises(DsaeError, match="version 99"):
        load_judge(tmp_path / "judge")
    save_judge(judge, tmp_path / "judge")
    weights = tmp_path / "judge" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(DsaeError, match="damaged"):
        load_judge(tmp_path / "judge")


def test_sprites_split_limit_keeps_the_first_sequences():
    data = sprites_split("test", limit=11)
    assert data.x.shape == (11, 8, 64, 64, 3) and data.x.dtype == np.uint8
    assert data.labels["action"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1]
    from dsae_cli.data import sprites

    _, test_ids = sprites.split_character_ids()
    assert data.labels["char_id"].tolist() == [test_ids[0]] * 9 + [test_ids[1]] * 2


# ------------------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """An untrained tiny 64x64 DSAE and an untrained tiny 64x64 judge, saved."""
    root = tmp_path_factory.mktemp("pair")
    torch.manual_seed(0)
    save_model(DSAE(DSAEConfig(frame_size=64, seq_len=8, f_dim=4, z_dim=2, hidden_dim=8, feature_dim=8, conv_width=2)), root / "model")
    save_judge(tiny_judge(frame_size=64), root / "judge")
    return root / "model", root / "judge"


def in_range(ms, lo, hi):
    return set(ms) == {"mean", "std"} and lo - 1e-9 <= ms["mean"] <= hi + 1e-9 and ms["std"] >= 0


def test_evaluate_sprites_json(tiny_pair, tmp_path):
    model, judge = tiny_pair
    args = ["evaluate", "sprites", "--model", model, "--judge", judge, "--limit", 18, "--repeats", 2, "--json", "--device", "cpu", "--batch-size", 8, "--plots", tmp_path / "plots"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    for key in ("split", "action_standard", "action_fitted", "static_acc", "swap", "paper_table", "model_id", "judge_id", "repeats", "n_test"):
        assert key in r, key
    assert r["split"] == "test" and r["n_test"] == 18 and r["repeats"] == 2 and len(r["model_id"]) == 16 and len(r["judge_id"]) == 16
    for action in (r["action_standard"], r["action_fitted"]):  # f from N(0, I); from the fitted p(f), if the model has one
        if action is None:
            continue
        assert in_range(action["acc"], 0, 1) and in_range(action["is"], 1, 9)
        assert in_range(action["h_yx"], 0, math.log(9)) and in_range(action["h_y"], 0, math.log(9))
    assert set(r["static_acc"]) == {"skin", "pants", "top", "hair", "all"}
    assert set(r["swap"]) == {"skin", "pants", "top", "hair", "all", "action"}
    assert all(in_range(v, 0, 1) for v in (*r["static_acc"].values(), *r["swap"].values()))
    assert set(r["paper_table"]) == set(HEADS)
    for row in r["paper_table"].values():
        assert in_range(row["disagreement"], 0, 1)
        assert all(in_range(row[k], 0, 40) for k in ("kl_recon", "kl_random", "kl_kept"))
    assert r["swap"]["skin"]["std"] == 0  # no sampling in the swap test
    # the confusion counts agree with the accuracies they explain
    for kind, acc in (("swap", r["swap"]), ("recon", r["recon_acc"])):
        for a in ("skin", "pants", "top", "hair"):
            cm = np.asarray(r["confusion"][kind][a])
            assert cm.shape == (6, 6) and cm.sum() == 18
            assert abs(np.trace(cm) / 18 - acc[a]["mean"]) < 1e-9
    for name in ("shared_f.png", "shared_z.png", "shared_f_frames.png", "shared_z_frames.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 0
    # same seed, same numbers
    again = json.loads(runner.invoke(app, [str(a) for a in args[:-2]]).stdout)
    assert again["action_standard"] == r["action_standard"] and again["paper_table"] == r["paper_table"]


def test_evaluate_sprites_markdown_and_refusals(tiny_pair):
    model, judge = tiny_pair
    base = ["evaluate", "sprites", "--limit", "18", "--repeats", "1", "--device", "cpu"]
    result = runner.invoke(app, base + ["--model", str(model), "--judge", str(judge)])
    assert result.exit_code == 0, result.output
    assert "| Acc | IS |" in result.stdout and "KL-random" in result.stdout and "What swaps lose" in result.stdout
    swapped = runner.invoke(app, base + ["--model", str(judge), "--judge", str(model)])
    assert swapped.exit_code == 1 and "not a DSAE model" in swapped.output and "Traceback" not in swapped.output


def test_judge_train_cli_tiny(tmp_path):
    out = tmp_path / "judge"
    args = ["judge", "train", "-o", out, "--epochs", 1, "--limit", 18, "--batch-size", 9, "--device", "cpu"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "config.json").read_text())
    assert set(meta["test_accuracy"]) == set(HEADS) and meta["training"]["steps"] == 2
    assert load_judge(out).config.conv_width == 16  # the small preset
    again = runner.invoke(app, [str(a) for a in args])
    assert again.exit_code == 1 and "already holds" in again.output
    bad = runner.invoke(app, ["judge", "train", "-o", str(tmp_path / "j2"), "--preset", "huge", "--limit", "9"])
    assert bad.exit_code == 1 and "unknown --preset" in bad.output


def test_evaluate_predict_compares_dynamics(tiny_pair, tmp_path):
    model, judge = tiny_pair
    torch.manual_seed(0)
    det = tmp_path / "lstm-f"
    save_model(DSAE(DSAEConfig(frame_size=64, seq_len=8, f_dim=4, z_dim=2, hidden_dim=8, feature_dim=8, conv_width=2, dynamics="lstm-f")), det)
    args = ["evaluate", "predict", "--model", model, "--model", det, "--judge", judge, "--limit", 18, "--context", 3, "--repeats", 2, "--json", "--device", "cpu"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [r["dynamics"] for r in rows] == ["stochastic", "lstm-f"]
    for r in rows:
        assert r["context"] == 3 and r["n_test"] == 18 and r["repeats"] == 2
        assert 0 < r["recon_mse"] < 1 and in_range(r["pred_mse"], 0, 1)
        assert set(r["pred_acc"]) == set(HEADS) and all(in_range(v, 0, 1) for v in r["pred_acc"].values())
    # a deterministic model's prediction does not depend on the roll-out noise
    assert rows[1]["pred_mse"]["std"] < 1e-12
    table = runner.invoke(app, [str(a) for a in args if a != "--json"])
    assert table.exit_code == 0 and "| model | dynamics |" in table.stdout and "lstm-f" in table.stdout
    bad = runner.invoke(app, ["evaluate", "predict", "--model", str(model), "--judge", str(judge), "--limit", "18", "--context", "8"])
    assert bad.exit_code == 1 and "--context must be between 1 and 7" in bad.output


def test_action_keys_name_the_prior_they_draw_f_from(tiny_pair):
    """action_standard draws f from N(0, I) whatever the model's p(f); action_fitted from the fitted p(f),
    and is None for a model without one. Placing the fitted p(f) far from N(0, I) tells the draws apart."""
    import torch

    from dsae_cli.checkpoint import load_model
    from dsae_cli.data.sprites import sprites_split
    from dsae_cli.evaluate.sprites import evaluate_sprites

    model, judge = load_model(tiny_pair[0]), load_judge(tiny_pair[1])
    data = sprites_split("test", limit=18)
    plain = evaluate_sprites(model, judge, data, repeats=1, batch_size=9)
    assert plain["f_prior"] == "standard" and plain["action_fitted"] is None
    draws = []
    usual = type(model).sample_f

    def spy(self, batch, generator=None, standard=False):
        f = usual(self, batch, generator=generator, standard=standard)
        draws.append((standard, float(f.mean())))
        return f

    model.fit_f_prior(torch.full((4, model.config.f_dim), 50.0), torch.zeros(4, model.config.f_dim))
    type(model).sample_f = spy
    try:
        fitted = evaluate_sprites(model, judge, data, repeats=1, batch_size=9)
    finally:
        type(model).sample_f = usual
    assert fitted["f_prior"] == "fitted" and fitted["action_fitted"] is not None
    assert {s for s, _ in draws} == {True, False}
    assert all(abs(m) < 5 for s, m in draws if s) and all(m > 45 for s, m in draws if not s)
