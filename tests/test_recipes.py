"""Recipes: the built-in TOML files, --set overrides, --minutes scaling, and a recipe of two stages end to end."""

import json

import pytest
from typer.testing import CliRunner

from dsae_cli.app import app
from dsae_cli.errors import DsaeError
from dsae_cli.train.recipes import apply_overrides, builtin_names, load_recipe, scale_minutes

TWO_STAGES = """
description = "two tiny stages"
[model]
f_dim = 8
z_dim = 4
hidden_dim = 16
feature_dim = 16
conv_width = 8

[[train]]
name = "elbo"
steps = 3
minutes = 30
batch_size = 4

[[train]]
name = "cycle"
steps = 2
minutes = 10
batch_size = 4
[train.model]
cycle_weight = 1.0
"""


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", ["sprites", "sprites-fitted", "sprites-wide", "clips", "paper", "tiny", "speech", "tiny-speech"])
def test_every_builtin_recipe_builds_its_model(name):
    from models import DSAE, DSAEConfig

    recipe = load_recipe(name)
    assert name in builtin_names() and recipe.stages and all("name" in s for s in recipe.stages)
    cfg = DSAEConfig.from_dict(recipe.model)
    assert sum(p.numel() for p in DSAE(cfg).parameters()) > 0


def test_the_sprites_recipe_is_the_embedded_models():
    """The shipped model's config is exactly what the recipe's last stage makes (p(f) stays N(0, I))."""
    from dsae_cli.checkpoint import load_model
    from models import DSAEConfig

    recipe = load_recipe("sprites")
    made = DSAEConfig.from_dict({**recipe.model, **recipe.stages[-1]["model"]})
    assert all(s.get("fit_f_prior") is False for s in recipe.stages)
    assert load_model("dsae_cli/pretrained/sprites").config == made and made.f_prior == "standard"
    assert recipe.minutes == 60


def test_set_overrides_fields_and_names_the_nearest_key_for_a_typo():
    recipe = load_recipe("sprites")
    out = apply_overrides(recipe, ["model.beta_z=16", "train.lr=5e-4", "train.2.minutes=5", "train.2.model.cycle_weight=0.5", "train.2.model.f_mmd_weight=1e5"])
    assert out.model["beta_z"] == 16.0 and isinstance(out.model["beta_z"], float)
    assert [s["lr"] for s in out.stages] == [5e-4, 5e-4]
    assert [s["minutes"] for s in out.stages] == [40, 5.0]
    assert out.stages[1]["model"]["cycle_weight"] == 0.5 and out.stages[1]["model"]["f_mmd_weight"] == 1e5
    assert recipe.model.get("beta_z") is None and recipe.stages[0]["lr"] == 1e-3  # the loaded recipe is untouched
    assert apply_overrides(recipe, ["model.likelihood=gaussian", "train.fit_f_prior=false"]).stages[0]["fit_f_prior"] is False
    with pytest.raises(DsaeError, match=r"did you mean model\.beta_z\?"):
        apply_overrides(recipe, ["model.beta_zz=16"])
    with pytest.raises(DsaeError, match="expected a whole number"):
        apply_overrides(recipe, ["model.f_dim=1.5"])
    with pytest.raises(DsaeError, match="has 2 stage"):
        apply_overrides(recipe, ["train.3.lr=1"])
    with pytest.raises(DsaeError, match="unknown key 'train.2.model.f_dim'"):
        apply_overrides(recipe, ["train.2.model.f_dim=3"])


def test_the_default_for_your_own_clips_assumes_no_black_background():
    from dsae_cli.train.recipes import default_recipe

    assert [default_recipe(d) for d in (None, "sprites", "s.npz", "speech:corpus", "my_clips/")] == ["sprites", "sprites", "sprites", "speech", "clips"]
    clips = load_recipe("clips")
    assert not clips.model.get("z_silhouette") and clips.data is None  # the silhouette is Sprites' view (black background)
    assert load_recipe("sprites").model["z_silhouette"]


def test_minutes_scale_every_stage_in_proportion():
    recipe = scale_minutes(load_recipe("sprites"), 6)
    assert [s["minutes"] for s in recipe.stages] == pytest.approx([4.0, 2.0])


def test_a_recipe_file_with_an_unknown_field_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nf_dimm = 3\n[[train]]\nsteps = 1\n")
    with pytest.raises(DsaeError, match=r"unknown model field 'f_dimm' \(did you mean f_dim\?\)"):
        load_recipe(bad)
    bad.write_text("[model\n")
    with pytest.raises(DsaeError, match="not valid TOML"):
        load_recipe(bad)


def test_two_stage_recipe_trains_resumes_and_records_its_config(sprite_gifs, tmp_path):
    from dsae_cli.checkpoint import load_model

    recipe = tmp_path / "two.toml"
    recipe.write_text(TWO_STAGES)
    run = tmp_path / "run"
    r = invoke("train", "--recipe", recipe, "--data", sprite_gifs, "--out", run, "--set", "model.beta_f=0.5",
               "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    saved = json.loads((run / "recipe.json").read_text())
    assert saved["recipe"]["model"]["beta_f"] == 0.5 and [s["name"] for s in saved["recipe"]["stages"]] == ["elbo", "cycle"]
    assert (run / "1-elbo" / "done.json").is_file() and (run / "2-cycle" / "done.json").is_file()
    first, last = load_model(run / "1-elbo"), load_model(run)
    assert first.config.cycle_weight == 0 and last.config.cycle_weight == 1.0 and last.config.beta_f == 0.5
    assert json.loads((run / "2-cycle" / "train.json").read_text())["init_from"]["path"] == str(run / "1-elbo" / "best")
    assert load_model(run / "best").model_id == load_model(run / "2-cycle" / "best").model_id
    # a finished recipe resumes to nothing new; a stage left unfinished is taken up again
    (run / "2-cycle" / "done.json").unlink()
    r = invoke("train", "--resume", run, "--steps", 4, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "stage 1" not in r.output and json.loads((run / "2-cycle" / "done.json").read_text())["step"] == 4
    # the folder now holds a run: a new run there is refused and nothing is overwritten
    before = (run / "model.safetensors").read_bytes()
    r = invoke("train", "--recipe", recipe, "--data", sprite_gifs, "--out", run)
    assert r.exit_code == 1 and "already holds a run" in r.output and (run / "model.safetensors").read_bytes() == before


def test_augmented_batches_flip_and_recolour_whole_sequences_and_draw_alike_on_resume():
    import numpy as np

    from dsae_cli.data.sequences import SequenceData
    from dsae_cli.train.batches import CHANNEL_ORDERS, AugmentedBatches

    x = np.random.default_rng(0).integers(0, 256, (24, 4, 8, 8, 3), dtype=np.uint8)
    data = SequenceData(x, np.arange(24))
    idx = np.arange(24)
    batches = AugmentedBatches(data, ("flip", "channels"), seed=3)
    y = batches.apply(x[idx], step=7, rank=0)
    assert (x == data.x).all()  # the data set itself is never changed
    assert (y == batches.apply(x[idx], step=7, rank=0)).all()  # the same step draws the same changes
    kinds = set()
    for a, b in zip(x, y):
        # each sequence is its own clip, mirrored or not, in one order of its colours, every frame alike
        found = [(flip, k) for flip in (False, True) for k in range(6) if (b == (a[:, :, ::-1] if flip else a)[..., CHANNEL_ORDERS[k]]).all()]
        assert len(found) == 1
        kinds.add(found[0])
    assert len({f for f, _ in kinds}) == 2 and len({k for _, k in kinds}) >= 4
    flip_only = AugmentedBatches(data, ("flip",)).apply(x[idx], step=1, rank=0)
    assert all((b == a).all() or (b == a[:, :, ::-1]).all() for a, b in zip(x, flip_only))


def test_augment_is_checked_before_training(sprite_gifs, tmp_path):
    r = invoke("train", "--data", sprite_gifs, "--out", tmp_path / "run", "--set", "train.augment=flip,hue", "--device", "cpu")
    assert r.exit_code == 1 and "unknown train.augment 'hue'" in r.output and "flip, channels" in r.output
    r = invoke("train", "--data", sprite_gifs, "--out", tmp_path / "run2", "--recipe", "tiny", "--set", "train.augment=flip",
               "--steps", 2, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
