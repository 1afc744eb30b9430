"""Model options beyond the 2018 DSAE's default: the deterministic baselines (lstm-f, lstm-c), the
latent cycle term, z's own views, the fitted p(f), the mixture likelihood; and configs of old
checkpoints that name removed options."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from conftest import moving_squares, tiny_model
from dsae_cli.data.sequences import video_batch
from models import DSAE, DSAEConfig
from models.objectives import cycle_loss

# the tiny video model of dsae_cli/recipes/tiny.toml
TINY = dict(f_dim=16, z_dim=4, hidden_dim=32, feature_dim=32, conv_width=8)


def train_steps(m: DSAE, x: torch.Tensor, steps: int, lr: float = 3e-3) -> tuple[float, float]:
    """Train m on x for a few Adam steps; the first and the last loss."""
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = m.loss(x)["loss"]
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_deterministic_baselines_have_one_z_per_sequence(dynamics):
    m = tiny_model(dynamics=dynamics)
    x = video_batch(moving_squares(3))
    post = m.encode(x, sample=True)
    # one z per sequence, repeated over time (so every caller sees (B, T, z_dim))
    assert post.z.shape == (3, 4, 3) and torch.equal(post.z, post.z[:, :1].expand_as(post.z))
    out = m.loss(x)
    # the KL of z is the KL of that one z against N(0, I), not T of them
    from models.distributions import kl_normal_standard

    assert torch.allclose(out["kl_z"], kl_normal_standard(post.z_mean[:, 0], post.z_logvar[:, 0]).sum(-1).mean())
    with pytest.raises(ValueError, match="no learned prior"):
        m.prior_params(post.z)
    m.eval()
    assert m.predict(x, context=2, steps=2).shape == x.shape
    assert m.sample_z(5).shape == (5, 4, 3)
    # the frames still change over time: the LSTM state, not z, varies with t
    h = m.dynamic_states(post.z)
    assert h.shape == (3, 4, m.config.hidden_dim) and not torch.allclose(h[:, 0], h[:, 1])


def test_lstm_f_starts_from_z_and_lstm_c_reads_it_every_step():
    f_model, c_model = tiny_model(dynamics="lstm-f"), tiny_model(dynamics="lstm-c")
    z = torch.randn(2, 1, 3).expand(-1, 4, -1)
    z2 = z.clone()
    z2[:, 1:] = 100.0  # only the first step is read: z is one latent per sequence
    for m in (f_model, c_model):
        assert torch.allclose(m.dynamic_states(z), m.dynamic_states(z2))
    assert f_model.dynamics_lstm.input_size == 1 and c_model.dynamics_lstm.input_size == 3


@pytest.mark.parametrize("dynamics", ["stochastic", "lstm-f", "lstm-c"])
def test_every_dynamics_trains(dynamics):
    torch.manual_seed(0)
    m = tiny_model(dynamics=dynamics)
    x = video_batch(moving_squares(16))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = m.loss(x)["loss"]
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.8 * first


def test_cycle_term_only_while_training_and_zero_weight_is_the_elbo():
    x = video_batch(moving_squares(4))
    plain, cyc = tiny_model(), tiny_model(cycle_weight=2.0)
    torch.manual_seed(1)
    a = plain.loss(x)
    torch.manual_seed(1)
    b = cyc.loss(x)
    assert "cycle" not in a and float(b["cycle"].detach()) > 0
    # same weights, same noise: the ELBO terms agree and the loss adds exactly weight * cycle
    assert torch.allclose(a["elbo"], b["elbo"]) and torch.allclose(b["loss"], a["loss"] + 2.0 * b["cycle"])
    cyc.eval()
    assert "cycle" not in cyc.loss(x)  # validation scores the ELBO alone
    # gradients of the cycle term reach the decoder and both encoders
    cyc.train()
    cyc.zero_grad()
    cycle_loss(cyc, cyc.encode(x, sample=True)).backward()
    for part in (cyc.frame_decoder, cyc.frame_encoder, cyc.static_head, cyc.dynamic_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_cycle_term_is_small_when_decode_and_encode_agree():
    """The cycle loss measures re-encoding error in posterior standard deviations: an encoder that
    reads back exactly the latents the decoder was given scores zero."""
    m = tiny_model(cycle_weight=1.0)
    post = m.encode(video_batch(moving_squares(4)), sample=True)
    m.decode = lambda f, z: torch.cat([f, z.flatten(1)], 1)  # stand-ins that make the cycle exact
    m.frame_features = lambda x, moving=None: x
    m.encode_static = lambda feats: (feats[:, : post.f.shape[1]], None)
    m.dynamic_features = lambda x, feats, moving=None: x[:, post.f.shape[1] :].view(post.z.shape)
    m.encode_dynamic = lambda feats, f: (feats, None)
    # the prior half's f cannot be read back exactly in general, but here it is: zero loss
    assert float(cycle_loss(m, post)) == pytest.approx(0.0, abs=1e-6)


def test_cycle_floor_bounds_the_term_as_the_posterior_narrows():
    """With cycle_floor, each latent's yardstick is its posterior std widened by a share of its spread
    over the batch: the term is below the plain one (share 0) and settles at a bound as the
    posterior's variances go to zero, where the plain term grows without bound."""
    x = video_batch(moving_squares(4))
    m = tiny_model(cycle_weight=1.0)
    torch.manual_seed(0)
    post = m.encode(x, sample=True)

    def term(share, shrink=0.0):
        m.config = dataclasses.replace(m.config, cycle_floor=share)
        p = type(post)(**{**vars(post), "f_logvar": post.f_logvar - shrink, "z_logvar": post.z_logvar - shrink}) if shrink else post
        torch.manual_seed(1)  # the same prior draw of f each time
        return float(cycle_loss(m, p).detach())

    plain, floored = term(0.0), term(0.1)
    assert 0 < floored < plain
    # posteriors 1e14 and 1e16 times narrower: the plain term grows with the precision, the floored one
    # settles at the bound its spreads set
    narrow, narrower = math.log(1e14), math.log(1e16)
    assert term(0.0, shrink=narrow) > 1e13 * plain and term(0.0, shrink=narrower) > 90 * term(0.0, shrink=narrow)
    assert term(0.1, shrink=narrower) == pytest.approx(term(0.1, shrink=narrow), rel=1e-2)
    with pytest.raises(ValueError, match="cycle_floor"):
        DSAEConfig(**TINY, cycle_floor=-0.1)


def test_silhouette_view_hides_colours_and_inner_detail_from_z():
    """With z_silhouette, z's encoder sees only where the figure is: recolouring a figure, or
    drawing detail inside it, leaves the factorised q(z_t | x_t) unchanged; moving it does not."""
    m = tiny_model(z_silhouette=True, posterior="factorised")
    m.eval()
    frames = moving_squares(2)
    x = video_batch(frames)
    recoloured = frames.copy()
    figure = recoloured.max(axis=-1) > 0
    recoloured[figure] = (recoloured[figure] // 3 + 40).astype("uint8")  # another colour, still non-background
    assert m.config.posterior == "factorised"
    assert torch.allclose(m.encode(x).z_mean, m.encode(video_batch(recoloured)).z_mean, atol=1e-6)
    assert not torch.allclose(m.encode(x).f_mean, m.encode(video_batch(recoloured)).f_mean)
    moved = torch.roll(x, shifts=3, dims=-1)
    assert not torch.allclose(m.encode(x).z_mean, m.encode(moved).z_mean)
    # decoded frames get a soft, differentiable mask in [0, 1]
    x_hat = torch.rand(2, 4, 3, 16, 16, requires_grad=True)
    mask = m.silhouette(x_hat)
    assert mask.shape == x_hat.shape and float(mask.detach().min()) >= 0 and float(mask.detach().max()) <= 1
    mask.sum().backward()
    assert x_hat.grad is not None
    with pytest.raises(ValueError, match="video"):
        DSAEConfig(modality="speech", likelihood="gaussian", z_silhouette=True)


def test_fitted_f_prior_is_the_moment_matched_gaussian_and_its_kl_is_exact(tmp_path):
    from dsae_cli.checkpoint import load_model, save_model
    from models.distributions import kl_diag_full

    torch.manual_seed(0)
    # the closed-form KL against a full-covariance Gaussian agrees with torch.distributions
    D = 6
    mq, lq = torch.randn(9, D), 0.3 * torch.randn(9, D)
    A = torch.randn(D, D)
    L = torch.linalg.cholesky(A @ A.T + torch.eye(D))
    loc = torch.randn(D)
    q = torch.distributions.MultivariateNormal(mq, torch.diag_embed(lq.exp()))
    p = torch.distributions.MultivariateNormal(loc, scale_tril=L)
    assert torch.allclose(kl_diag_full(mq, lq, loc, L), torch.distributions.kl_divergence(q, p), atol=1e-4)

    model = tiny_model()
    means = 2.0 + 3.0 * torch.randn(400, model.config.f_dim)
    logvars = torch.full_like(means, -2.0)
    model.fit_f_prior(means, logvars)
    assert model.config.f_prior == "fitted"
    assert torch.allclose(model.f_prior_loc, means.mean(0), atol=1e-5)
    cov = model.f_prior_scale_tril @ model.f_prior_scale_tril.T
    expected = torch.cov(means.T, correction=0) + torch.exp(torch.tensor(-2.0)) * torch.eye(model.config.f_dim)
    assert torch.allclose(cov, expected, atol=1e-3)
    draws = model.sample_f(20000, generator=torch.Generator().manual_seed(1))
    assert (draws.mean(0) - means.mean(0)).abs().max() < 0.15  # samples come from N(m, S), not N(0, I)
    # the KL of the loss is taken against the fitted prior: ~0 for a posterior equal to it
    zero = kl_diag_full(model.f_prior_loc[None], torch.log(torch.diagonal(cov))[None], model.f_prior_loc, model.f_prior_scale_tril)
    assert zero.item() >= -1e-4
    # saved and loaded with the weights; dropping it restores N(0, I)
    save_model(model, tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.config.f_prior == "fitted" and torch.equal(back.f_prior_loc, model.f_prior_loc)
    back.use_standard_f_prior()
    assert back.config.f_prior == "standard" and "f_prior_loc" not in back.state_dict()
    assert abs(float(back.sample_f(20000, generator=torch.Generator().manual_seed(1)).mean())) < 0.05
    with pytest.raises(ValueError, match="f_prior"):
        DSAEConfig(f_prior="learned")


def test_hide_z_decodes_from_f_alone_with_the_same_kl_terms():
    """loss(hide_z=True), the static-first phase: the reconstruction is f's alone (no gradient reaches z's
    encoder through it, and it is the reconstruction from zeros in place of z), the KL terms are the usual
    ones, and the cycle term is left out."""
    torch.manual_seed(0)
    m = DSAE(DSAEConfig(**TINY, z_silhouette=True, z_input_size=16, cycle_weight=1.0)).train()
    x = torch.rand(4, 8, 3, 64, 64)
    torch.manual_seed(1)
    hidden = m.loss(x, hide_z=True)
    torch.manual_seed(1)
    usual = m.loss(x)
    assert "cycle" not in hidden and "cycle" in usual
    assert torch.allclose(hidden["kl_f"], usual["kl_f"]) and torch.allclose(hidden["kl_z"], usual["kl_z"])
    torch.manual_seed(1)
    post = m.encode(x, sample=True)
    expected = m.reconstruction_nll(m.decode_params(post.f, torch.zeros_like(post.z)), x).mean()
    assert torch.allclose(hidden["recon"], expected)
    hidden["recon"].backward()
    z_encoder = [p for n, p in m.named_parameters() if n.startswith("dynamic_frame_encoder.")]
    f_encoder = [p for n, p in m.named_parameters() if n.startswith("frame_encoder.")]
    assert z_encoder and all(p.grad is None or not p.grad.any() for p in z_encoder)
    assert any(p.grad is not None and p.grad.any() for p in f_encoder)
    m.zero_grad()
    usual["recon"].backward()
    assert any(p.grad is not None and p.grad.any() for p in z_encoder)


def test_loss_terms_stay_float32_under_bf16_autocast():
    """Under bf16 autocast (dsae train --precision bf16) the layers run in bf16, but the Gaussian heads'
    outputs, and so the samples, KLs and the loss, are float32: a KL summed in bf16 keeps 3 digits."""
    from dsae_cli.train.config import cpu_has_bf16

    if not cpu_has_bf16():  # oneDNN has no bf16 LSTM there (dsae train refuses --precision bf16 on such CPUs)
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX)")

    torch.manual_seed(0)
    m = DSAE(DSAEConfig(**TINY)).train()
    x = torch.rand(2, 8, 3, 64, 64)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.loss(x)
        post = m.encode(x)
    assert all(out[k].dtype == torch.float32 for k in ("loss", "recon", "kl_f", "kl_z"))
    assert post.f_mean.dtype == post.z_logvar.dtype == torch.float32
    torch.manual_seed(1)
    with torch.no_grad():
        ref = m.loss(x)
    assert abs(float(out["kl_z"].detach()) - float(ref["kl_z"])) < 0.05 * abs(float(ref["kl_z"])) + 0.5  # close to the fp32 value


def test_mixture_likelihood_is_the_exact_density_with_exact_gradients_and_decodes_the_likeliest_colour(tmp_path):
    """likelihood="mixture": K Gaussians per pixel with their own colours and weights. The hand-written
    loss and gradient match torch.distributions' mixture and autograd through it; an uncertain pixel
    (half the time 0.2, half 0.8) costs a two-component mixture less than the Gaussian's best blend;
    decoded frames show each pixel's likeliest component's colour; such a model trains, round-trips
    through a checkpoint, and the option is refused where it cannot apply."""
    from dsae_cli.checkpoint import load_model, save_model

    torch.manual_seed(0)
    K, C = 3, 3
    m = tiny_model(likelihood="mixture", likelihood_components=K, likelihood_scale=0.1)
    assert m.frame_decoder.deconv[-1].out_channels == K * (C + 1)
    x = torch.rand(2, 4, C, 8, 8, dtype=torch.float64)
    params = torch.randn(2, 4, K * (C + 1), 8, 8, dtype=torch.float64, requires_grad=True)
    D = torch.distributions

    def exact_nll(prm):  # torch.distributions' mixture, per sequence
        logits = prm[:, :, :K].permute(0, 1, 3, 4, 2)
        colours = prm[:, :, K:].reshape(2, 4, K, C, 8, 8).permute(0, 1, 4, 5, 2, 3)
        ref = D.MixtureSameFamily(D.Categorical(logits=logits), D.Independent(D.Normal(colours, 0.1), 1))
        return -ref.log_prob(x.permute(0, 1, 3, 4, 2)).flatten(1).sum(1)

    exact = exact_nll(params)
    (g_exact,) = torch.autograd.grad(exact.sum(), params)
    p = params.detach().clone().requires_grad_()
    nll = m.reconstruction_nll(p, x)
    (g,) = torch.autograd.grad(nll.sum(), p)
    assert torch.allclose(nll.double(), exact.detach(), rtol=1e-5)
    assert torch.allclose(g.double(), g_exact, rtol=1e-4, atol=1e-4)
    # far-off colours (exponents far below -87, where the loss clamps them) and a second backward pass
    far = (params.detach() * 10).requires_grad_()
    exact_far = exact_nll(far)
    (g_exact_far,) = torch.autograd.grad(exact_far.sum(), far)
    p = far.detach().clone().requires_grad_()
    nll = m.reconstruction_nll(p, x)
    assert torch.allclose(nll.double(), exact_far.detach(), rtol=1e-5)
    (g1,) = torch.autograd.grad(nll.sum(), p, retain_graph=True)
    (g2,) = torch.autograd.grad(nll.sum(), p)
    assert torch.equal(g1, g2) and torch.allclose(g1.double(), g_exact_far, rtol=1e-4, atol=1e-3)

    # one pixel, one channel: 0.2 or 0.8, half the time each
    one = tiny_model(likelihood="mixture", likelihood_components=2, likelihood_scale=0.05, channels=1)
    gauss = tiny_model(likelihood="gaussian", likelihood_scale=0.05, channels=1)
    data = torch.tensor([0.2, 0.8]).view(2, 1, 1, 1, 1)
    two_colours = torch.tensor([0.0, 0.0, 0.2, 0.8]).view(1, 1, 4, 1, 1).expand(2, -1, -1, -1, -1)
    blend = torch.full((2, 1, 1, 1, 1), 0.5)
    assert float(one.reconstruction_nll(two_colours, data).sum()) < float(gauss.reconstruction_nll(blend, data).sum()) - 10

    # decoding: the likeliest component's colour at every pixel
    with torch.no_grad():
        f, z = torch.randn(2, m.config.f_dim), torch.randn(2, 4, m.config.z_dim)
        out = m.decode_params(f, z)
        lg, col = m.mixture_parts(out)
        best = lg.argmax(dim=2)
        want = torch.stack([col[:, :, k] for k in range(K)], dim=2)
        want = want.gather(2, best[:, :, None, None].expand(-1, -1, 1, C, -1, -1)).squeeze(2).clamp(0, 1)
        assert torch.equal(m.decode(f, z), want)

    xs = video_batch(moving_squares(4))
    first, last = train_steps(m, xs, 20)
    assert last < first
    save_model(m.eval(), tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.config.likelihood == "mixture" and back.config.likelihood_components == K
    with torch.no_grad():
        post = m.encode(xs)
        assert torch.equal(back.decode(post.f, post.z), m.decode(post.f, post.z))
    with pytest.raises(ValueError, match="video"):
        DSAEConfig(modality="speech", likelihood="mixture")
    with pytest.raises(ValueError, match="likelihood_components"):
        DSAEConfig(likelihood="mixture", likelihood_components=0)


def test_z_conv_width_sizes_only_zs_own_encoder():
    cfg = DSAEConfig(**{**TINY, "z_silhouette": True, "z_input_size": 16, "conv_width": 8, "z_conv_width": 4})
    model = DSAE(cfg)
    assert model.dynamic_frame_encoder.conv[0].out_channels == 4 and model.frame_encoder.conv[0].out_channels == 8
    x = torch.rand(2, cfg.seq_len, 3, cfg.frame_size, cfg.frame_size)
    out = model.loss(x)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.dynamic_frame_encoder.conv[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="z_conv_width"):  # z shares f's encoder: nothing to size
        DSAEConfig(**{**TINY, "z_conv_width": 4})
    old = cfg.to_dict()
    del old["z_conv_width"]  # a checkpoint from before the field: z's encoder as wide as the codec
    assert DSAEConfig.from_dict(old).z_conv_width == 0


def test_old_configs_load_with_removed_options_off_and_are_refused_with_them_on():
    """A checkpoint's saved config may name options that no longer exist: at the value that left
    them off they are dropped; at any other value (or the removed Laplace likelihood) the model
    cannot be rebuilt, and the message names the option."""
    import json
    from pathlib import Path

    from models.config import REMOVED_OPTIONS

    old = {**DSAEConfig(**TINY).to_dict(), **REMOVED_OPTIONS}
    assert DSAEConfig.from_dict(old) == DSAEConfig(**TINY)
    assert DSAEConfig.from_dict({**old, "adversary_weight": 0}).f_dim == 16  # an int zero is still off
    for name, value in (("decoder_palette", 4), ("static_pool", "mean"), ("z_colour_blind", True), ("contrast_temperature", 0.2)):
        with pytest.raises(ValueError, match=f"removed option {name}=") as err:
            DSAEConfig.from_dict({**old, name: value})
        assert "retrain" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError, match="removed option likelihood='laplace'"):
        DSAEConfig.from_dict({**old, "likelihood": "laplace"})
    with pytest.raises(ValueError, match="unknown config fields"):  # never a field: still an error
        DSAEConfig.from_dict({**old, "decoder_sparkle": 0})
    with pytest.raises(TypeError):  # a new config cannot ask for a removed option
        DSAEConfig(decoder_palette=0)
    # the shipped models' configs, written with every option of their day
    for meta in sorted((Path(__file__).parent.parent / "dsae_cli" / "pretrained").glob("*/config.json")):
        saved = json.loads(meta.read_text())
        if saved.get("class") == "DSAE":
            assert DSAEConfig.from_dict(saved["config"]).modality == saved["modality"]


def test_moving_view_ignores_the_background_and_the_colours_and_follows_the_figure():
    """With z_moving, z's encoder sees what differs from the clip's temporal median, without colour:
    another background colour, or another figure colour, leaves the factorised q(z_t | x_t) as it
    was; moving the figure changes it."""
    m = tiny_model(z_moving=True, posterior="factorised")
    m.eval()
    frames = moving_squares(2, T=5)
    figure = frames.max(axis=-1) > 0
    on_grey = frames.copy()
    on_grey[~figure] = (90, 120, 60)  # a coloured background instead of black
    recoloured = on_grey.copy()
    recoloured[figure] = 255 - recoloured[figure] // 2
    z = m.encode(video_batch(on_grey)).z_mean
    # the figure differs from the background by more than the view's level in both clips, so the views match
    assert torch.equal(m.moving(video_batch(on_grey)), m.moving(video_batch(recoloured)))
    assert torch.allclose(z, m.encode(video_batch(recoloured)).z_mean, atol=1e-6)
    moved = torch.roll(video_batch(on_grey), shifts=3, dims=-1)
    assert not torch.allclose(z, m.encode(moved).z_mean)
    # a still clip shows nothing moving; the view of decoded frames is differentiable
    still = video_batch(on_grey[:, :1].repeat(5, axis=1))
    assert float(m.moving(still).max()) == 0.0
    x_hat = torch.rand(2, 4, 3, 16, 16, requires_grad=True)
    m.moving(x_hat).sum().backward()
    assert x_hat.grad is not None
    with pytest.raises(ValueError, match="choose one"):
        DSAEConfig(z_moving=True, z_silhouette=True)


def test_mixture_prior_scores_samples_and_rolls_out():
    """prior_components > 1: log p(z_1:T) is finite and the KL estimate enters the loss; roll-outs
    have the right shape and follow the seed."""
    m = tiny_model(prior_components=3)
    x = video_batch(moving_squares(4))
    out = m(x)
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["kl_z"])
    out["loss"].backward()
    assert m.prior_head.weight.grad is not None
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    z1, z2 = m.sample_z(5, steps=6, generator=g1), m.sample_z(5, steps=6, generator=g2)
    assert z1.shape == (5, 6, m.config.z_dim) and torch.equal(z1, z2)
    assert m.prior_log_density(z1).shape == (5,)
    with pytest.raises(ValueError, match="mixture"):
        m.prior_params(z1)


def test_mmd_term_is_small_for_standard_normal_draws_and_large_far_from_them():
    from models.objectives import mmd_standard

    torch.manual_seed(0)
    near = float(mmd_standard(torch.randn(256, 16)))
    far = float(mmd_standard(0.2 * torch.randn(256, 16) + 2.0))
    assert abs(near) < 0.05 and far > 1.0
    m = tiny_model(f_mmd_weight=10.0)
    out = m(video_batch(moving_squares(4)))
    assert "mmd_f" in out and torch.isfinite(out["mmd_f"])


def test_film_layout_lets_f_enter_the_decoders_linear_layer():
    plain = tiny_model(decoder_film=True)
    layout = tiny_model(decoder_film=True, decoder_f_layout=True)
    cfg = layout.config
    assert layout.frame_decoder.fc[0].in_features == plain.frame_decoder.fc[0].in_features + cfg.f_dim
    x = video_batch(moving_squares(2))
    post = layout.encode(x)
    assert layout.decode(post.f, post.z).shape == x.shape
    with pytest.raises(ValueError, match="decoder_film"):
        DSAEConfig(decoder_f_layout=True)


@pytest.mark.parametrize("likelihood", ["gaussian", "mixture"])
def test_moving_weight_adds_the_moving_pixels_term_while_training_only(likelihood):
    """moving_weight adds w times the reconstruction term of the moving pixels to the training loss;
    the ELBO terms, and the loss in evaluation, are those of the plain model."""
    x = video_batch(moving_squares(3, T=5))
    plain = tiny_model(likelihood=likelihood, likelihood_scale=0.1)
    weighted = tiny_model(likelihood=likelihood, likelihood_scale=0.1, moving_weight=4.0)
    weighted.load_state_dict(plain.state_dict())
    for m in (plain, weighted):
        m.train()
    torch.manual_seed(1)
    a = plain.loss(x)
    torch.manual_seed(1)
    b = weighted.loss(x)
    assert "moving" not in a and torch.allclose(a["recon"], b["recon"]) and torch.allclose(a["elbo"], b["elbo"])
    # the moving term is the per-pixel nll summed over the moving mask, a part of the whole
    mask = weighted.moving(x)[:, :, :1]
    assert 0 < float(mask.mean()) < 0.5
    assert torch.allclose(b["loss"], a["loss"] + 4.0 * b["moving"], rtol=1e-5)
    weighted.eval()
    torch.manual_seed(1)
    assert "moving" not in weighted.loss(x)
    first, last = train_steps(tiny_model(likelihood=likelihood, likelihood_scale=0.1, moving_weight=4.0), x, 5)
    assert last < first
    with pytest.raises(ValueError, match="moving_weight"):
        DSAEConfig(moving_weight=-1.0)
    with pytest.raises(ValueError, match="video"):
        DSAEConfig(modality="speech", n_bins=8, moving_weight=1.0)


def test_object_decoder_places_a_figure_over_a_background():
    """decoder_object: outside the figure's canvas the frame is the background; the placement head moves
    the figure."""
    from models.frames import ObjectFrameDecoder

    torch.manual_seed(0)
    f_dim, d, T = 6, 3, 4
    dec = ObjectFrameDecoder(d + f_dim, 3, 32, 4, f_dim, scale=0.25)
    with torch.no_grad():
        dec.figure.deconv[-1].bias[3] = 20.0  # opaque all over its canvas
        dec.figure.film.weight.zero_()
    f = torch.randn(2, f_dim).repeat_interleave(T, 0)
    h = torch.cat([torch.randn(2 * T, d), f], 1)
    with torch.no_grad():
        once = dec(h)
        bg = dec.background(h)
        differs = ((once - bg).abs().amax(1) > 1e-4).float()  # (N, 32, 32): where the figure lies
        # the canvas (half-width 0.25 of the frame) lies at the centre, and nowhere else
        assert differs[:, 12:20, 12:20].all() and differs[:, :, :10].sum() == 0 and differs[:, :10].sum() == 0
        ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
        before = float((differs * xs).sum() / differs.sum())
        dec.place.bias[0] = 0.5  # centre x = tanh(0.5) of the half-frame to the right
        moved = ((dec(h) - bg).abs().amax(1) > 1e-4).float()
        after = float((moved * xs).sum() / moved.sum())
    assert after - before == pytest.approx(16 * float(torch.tanh(torch.tensor(0.5))), abs=1.0)


def test_object_decoder_model_trains_and_rejects_what_it_cannot_draw():
    m = tiny_model(decoder_object=True, likelihood="gaussian", likelihood_scale=0.1, moving_weight=2.0)
    x = video_batch(moving_squares(3, T=4))
    first, last = train_steps(m, x, 8)
    assert last < first
    m.eval()
    post = m.encode(x)
    out = m.decode(post.f, post.z)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="decoder_object"):
        DSAEConfig(decoder_object=True, likelihood="mixture")
    with pytest.raises(ValueError, match="decoder_film"):
        DSAEConfig(decoder_object=True, decoder_film=True)
    with pytest.raises(ValueError, match="object_scale"):
        DSAEConfig(object_scale=0)


def test_figure_part_of_f_reaches_only_the_canvas_and_the_rest_only_the_background():
    """f_figure_dim: f's first values reach only the figure's canvas, the rest only the background."""
    k = 4
    m = tiny_model(frame_size=32, f_dim=10, z_moving=True, f_object_view=True, decoder_object=True, object_scale=0.25,
                   f_figure_dim=k, likelihood="gaussian", likelihood_scale=0.1).eval()  # fmt: skip
    dec, d = m.frame_decoder, m.config.z_dim
    h = torch.cat([torch.randn(3, d), torch.randn(3, m.config.f_dim)], 1)
    fig_changed, bg_changed = h.clone(), h.clone()
    fig_changed[:, d : d + k] += 1.0
    bg_changed[:, d + k :] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(dec.figure(h[:, : d + k]), dec.figure(bg_changed[:, : d + k]))
        background = dec.background(torch.cat([h[:, :d], h[:, d + k :]], 1))
        torch.testing.assert_close(background, dec.background(torch.cat([fig_changed[:, :d], fig_changed[:, d + k :]], 1)))
        assert (dec(h) - dec(fig_changed)).abs().max() > 1e-4 and (dec(h) - dec(bg_changed)).abs().max() > 1e-4
        # where the canvas does not reach (the frame's corner), only the background's part of f matters
        corner = (slice(None), slice(None), slice(0, 4), slice(0, 4))
        torch.testing.assert_close(dec(h)[corner], dec(fig_changed)[corner])
    first, last = train_steps(m, video_batch(moving_squares(3, T=4, size=32)), 8)
    assert last < first
    for bad, match in (({"f_figure_dim": 4}, "decoder_object"), ({"f_figure_dim": 8, "f_dim": 8, "decoder_object": True}, "f_dim")):
        with pytest.raises(ValueError, match=match):
            DSAEConfig(**bad)


def test_object_view_follows_what_moves_and_falls_back_to_the_centre():
    """f_object_view: the window is centred on the centroid of what moves in each frame, so a figure moving
    over a textured background stays at the window's centre; a still clip gets the frame's centre."""
    m = tiny_model(frame_size=32, z_moving=True, f_object_view=True, object_scale=0.25)
    T, S = 5, m.object_window_size
    x = torch.zeros(1, T, 3, 32, 32)
    x[..., ::2, :] = 0.3  # stripes: a background that is not black
    for t in range(T):  # a 4x4 white square moving right and down
        x[0, t, :, 4 + 3 * t : 8 + 3 * t, 6 + 4 * t : 10 + 4 * t] = 1.0
    window = m.object_window(x, m.moving(x))
    assert window.shape == (1, T, 3, S, S)
    bright = (window[0, :, 0] > 0.9).float()
    ys, xs = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32), indexing="ij")
    for t in range(T):  # the square's centroid lies at the window's centre in every frame
        cy = float((bright[t] * ys).sum() / bright[t].sum())
        cx = float((bright[t] * xs).sum() / bright[t].sum())
        assert abs(cy - (S - 1) / 2) < 1.0 and abs(cx - (S - 1) / 2) < 1.0
    still = x[:, :1].expand(-1, T, -1, -1, -1).contiguous()
    centre = m.object_window(still, m.moving(still))
    # the middle 8x8 pixels (a quarter of the frame's width) magnified to S x S
    expected = torch.nn.functional.interpolate(still[0, :, :, 12:20, 12:20], size=(S, S), mode="bilinear", align_corners=False)
    torch.testing.assert_close(centre[0, ..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5, rtol=0)
    post = m.encode(video_batch(moving_squares(2, size=32)))
    assert post.f.shape == (2, m.config.f_dim)
