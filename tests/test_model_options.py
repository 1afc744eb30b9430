"""Model options beyond the 2018 DSAE's default: the deterministic baselines (lstm-f, lstm-c), the
latent cycle term and z's centred view (speech)."""

from __future__ import annotations

import pytest
import torch

from conftest import moving_squares, tiny_model
from dsae_cli.datasets import video_batch
from models import DSAE, DSAEConfig


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
    cyc.cycle_loss(cyc.encode(x, sample=True)).backward()
    for part in (cyc.frame_decoder, cyc.frame_encoder, cyc.static_head, cyc.dynamic_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_cycle_term_is_small_when_decode_and_encode_agree():
    """The cycle loss measures re-encoding error in posterior standard deviations: an encoder that
    reads back exactly the latents the decoder was given scores zero."""
    m = tiny_model(cycle_weight=1.0)
    post = m.encode(video_batch(moving_squares(4)), sample=True)
    m.decode = lambda f, z: torch.cat([f, z.flatten(1)], 1)  # stand-ins that make the cycle exact
    m.frame_features = lambda x: x
    m.encode_static = lambda feats: (feats[:, : post.f.shape[1]], None)
    m.dynamic_features = lambda x, feats: x[:, post.f.shape[1] :].view(post.z.shape)
    m.encode_dynamic = lambda feats, f: (feats, None)
    # the prior half's f cannot be read back exactly in general, but here it is: zero loss
    assert float(m.cycle_loss(post)) == pytest.approx(0.0, abs=1e-6)


def test_centred_view_hides_the_mean_spectrum_from_z():
    cfg = DSAEConfig(modality="speech", n_bins=11, seq_len=5, likelihood="gaussian", f_dim=4, z_dim=3, hidden_dim=8, feature_dim=8, z_centred=True)
    torch.manual_seed(0)
    m = DSAE(cfg)
    m.eval()
    x = torch.randn(2, 5, 11)
    envelope = torch.randn(2, 1, 11)  # a different voice colour: one offset per bin for the whole segment
    za, zb = m.encode(x).z_mean, m.encode(x + envelope).z_mean
    # the factorised q(z_t | x_t) sees centred frames only: z does not move; f does
    assert cfg.posterior == "full"
    m2 = DSAE(DSAEConfig(**{**cfg.to_dict(), "posterior": "factorised"}))
    m2.eval()
    assert torch.allclose(m2.encode(x).z_mean, m2.encode(x + envelope).z_mean, atol=1e-5)
    assert not torch.allclose(m2.encode(x).f_mean, m2.encode(x + envelope).f_mean)
    assert za.shape == zb.shape == (2, 5, 3)
    with pytest.raises(ValueError, match="speech"):
        DSAEConfig(z_centred=True)


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
    with pytest.raises(ValueError, match="one view"):
        DSAEConfig(z_silhouette=True, z_colour_blind=True)
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


def test_palette_decoder_draws_part_maps_that_f_colours():
    """With decoder_palette K, every decoded pixel is bias(f) + mix(f) @ maps: with K = 2 maps the
    colours of one frame lie in a plane of RGB (rank 2), whereas the plain FiLM decoder's span all
    three channels; a sequence's f alone changes the mix, and such a model trains."""
    x = video_batch(moving_squares(4))

    def colour_rank(m):
        m.eval()
        with torch.no_grad():
            post = m.encode(x)
            params = m.decode_params(post.f, post.z)  # (B, T, 3, H, W)
            dec = m.frame_decoder
            n = params.shape[0] * params.shape[1]
            style = post.f.unsqueeze(1).expand(-1, params.shape[1], -1).reshape(n, -1)
            bias = dec.film(dec.film_mlp(style))[:, -3 - 3 * dec.palette : -3 * dec.palette or None]
        pixels = params.reshape(n, 3, -1) - bias[:, :, None]
        return int(torch.linalg.matrix_rank(pixels[0], rtol=1e-4))

    assert colour_rank(tiny_model(decoder_film=True, decoder_palette=2)) == 2
    assert colour_rank(tiny_model(decoder_film=True, decoder_palette=2, film_hidden=16)) == 2
    assert colour_rank(tiny_model(decoder_film=True)) == 3
    m = tiny_model(decoder_film=True, decoder_palette=4, film_hidden=16)
    first, last = train_steps(m, x, 30)
    assert last < 0.9 * first
    with pytest.raises(ValueError, match="decoder_film"):
        DSAEConfig(decoder_palette=4)
    with pytest.raises(ValueError, match="negative"):
        DSAEConfig(decoder_film=True, decoder_palette=-1)
    with pytest.raises(ValueError, match="decoder_film"):
        DSAEConfig(film_hidden=32)


@pytest.mark.parametrize("film", [True, False])
def test_refine_decoder_chooses_each_pixels_colour_on_its_own_and_f_reaches_it(film, tmp_path):
    """With decoder_refine R the last transposed conv draws R full-resolution maps and a 1x1 conv
    colours them pixel by pixel: a change to one pixel of the maps changes that pixel's colour only;
    with FiLM, f modulates those maps too; such a model trains and round-trips through a checkpoint."""
    from dsae_cli.checkpoint import load_model, save_model

    x = video_batch(moving_squares(4))
    m = tiny_model(decoder_film=film, decoder_refine=6)
    dec = m.frame_decoder
    assert dec.deconv[-1].out_channels == 6
    maps = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        before = dec.refine_out(maps.clone())  # (its LeakyReLU works in place)
        maps[0, :, 10, 20] += 5.0
        changed = (dec.refine_out(maps.clone()) - before).abs().sum(1)[0] > 1e-6
    assert changed[10, 20] and int(changed.sum()) == 1
    if film:
        assert dec.film_channels[-1] == 6  # the full-resolution maps get a scale and shift from f
    first, last = train_steps(m, x, 30)
    assert last < 0.9 * first
    save_model(m.eval(), tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.config.decoder_refine == 6
    with torch.no_grad():
        post = m.encode(x)
        assert torch.allclose(back.decode(post.f, post.z), m.decode(post.f, post.z), atol=1e-6)
    with pytest.raises(ValueError, match="negative"):
        DSAEConfig(decoder_refine=-1)
    with pytest.raises(ValueError, match="video"):
        DSAEConfig(modality="speech", decoder_refine=4)


@pytest.mark.parametrize("pool", ["mean", "stats"])
def test_static_pool_summarises_every_frame_and_round_trips(pool, tmp_path):
    from dsae_cli.checkpoint import load_model, save_model

    m = tiny_model(static_pool=pool).eval()
    x = video_batch(moving_squares(3))
    feats = m.frame_features(x)
    out, _ = m.static_lstm(feats)
    pooled = out.mean(1) if pool == "mean" else torch.cat([out.mean(1), (out.var(1, unbiased=False) + 1e-5).sqrt()], -1)
    mean, logvar = m.static_head(pooled)
    post = m.encode(x)
    assert torch.allclose(post.f_mean, mean, atol=1e-6) and torch.allclose(post.f_logvar, logvar, atol=1e-6)
    # the paper's summary reads only the two end states; a pooled one also moves with the frames between
    last = tiny_model(static_pool="last").eval()
    last.load_state_dict({k: v for k, v in m.state_dict().items() if not (pool == "stats" and k.startswith("static_head"))}, strict=pool != "stats")
    assert not torch.allclose(last.encode(x).f_mean, post.f_mean)
    m.train()
    loss = m.loss(x)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    save_model(m.eval(), tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.config.static_pool == pool and torch.allclose(again.encode(x).f_mean, post.f_mean)
    with pytest.raises(ValueError, match="static_pool"):
        DSAEConfig(static_pool="max")


def test_laplace_likelihood_is_the_exact_density_and_trains():
    from models import DSAE, DSAEConfig
    from models.config import PRESETS

    torch.manual_seed(0)
    cfg = DSAEConfig(**{**PRESETS["tiny"], "likelihood": "laplace", "likelihood_scale": 0.05})
    m = DSAE(cfg)
    x = torch.rand(2, 8, 3, 64, 64)
    params = torch.rand(2, 8, 3, 64, 64)
    exact = -torch.distributions.Laplace(params, 0.05).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(m.reconstruction_nll(params, x), exact, rtol=1e-5)
    # an uncertain pixel (half the time 0.2, half 0.8): the Laplace's best location is anywhere between, the
    # Gaussian's only the blend 0.5; a 0.7 costs the Laplace no more than 0.5 does, the Gaussian more
    two = torch.tensor([0.2, 0.8])
    gauss = DSAE(DSAEConfig(**{**PRESETS["tiny"], "likelihood": "gaussian", "likelihood_scale": 0.05}))

    def cost(model, loc):
        return float(model.reconstruction_nll(torch.full((2, 1), loc), two[:, None]).sum())

    assert cost(m, 0.7) == pytest.approx(cost(m, 0.5)) and cost(gauss, 0.7) > cost(gauss, 0.5) + 1.0
    # decoded means are pixel values, and a few steps lower the loss
    assert m.decode(torch.randn(2, cfg.f_dim), torch.randn(2, 8, cfg.z_dim)).clamp(0, 1).shape == (2, 8, 3, 64, 64)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        loss = m.loss(x)["loss"]
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first
    with pytest.raises(ValueError, match="likelihood"):
        DSAEConfig(likelihood="cauchy")


def test_hide_z_decodes_from_f_alone_with_the_same_kl_terms():
    """loss(hide_z=True), the static-first phase: the reconstruction is f's alone (no gradient reaches z's
    encoder through it, and it is the reconstruction from zeros in place of z), the KL terms are the usual
    ones, and the cycle term is left out."""
    from models import PRESETS

    torch.manual_seed(0)
    m = DSAE(DSAEConfig(**PRESETS["tiny"], z_silhouette=True, z_input_size=16, cycle_weight=1.0)).train()
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
    from dsae_cli.train.loop import cpu_has_bf16
    from models import PRESETS

    if not cpu_has_bf16():  # oneDNN has no bf16 LSTM there (dsae train refuses --precision bf16 on such CPUs)
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 or AMX)")

    torch.manual_seed(0)
    m = DSAE(DSAEConfig(**PRESETS["tiny"])).train()
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
    from models import DSAE, PRESETS

    cfg = DSAEConfig(**{**PRESETS["tiny"], "z_silhouette": True, "z_input_size": 16, "conv_width": 8, "z_conv_width": 4})
    model = DSAE(cfg)
    assert model.dynamic_frame_encoder.conv[0].out_channels == 4 and model.frame_encoder.conv[0].out_channels == 8
    x = torch.rand(2, cfg.seq_len, 3, cfg.frame_size, cfg.frame_size)
    out = model.loss(x)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.dynamic_frame_encoder.conv[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="z_conv_width"):  # z shares f's encoder: nothing to size
        DSAEConfig(**{**PRESETS["tiny"], "z_conv_width": 4})
    old = cfg.to_dict()
    del old["z_conv_width"]  # a checkpoint from before the field: z's encoder as wide as the codec
    assert DSAEConfig.from_dict(old).z_conv_width == 0
