"""The model core: KL terms, the teacher-forced prior, both posteriors, shapes, training."""

from __future__ import annotations

import pytest
import torch

from conftest import moving_squares, tiny_model
from dsae_cli.data.sequences import video_batch
from models import DSAEConfig
from models.distributions import gaussian_log_density, kl_normal_normal, kl_normal_standard


def test_kl_standard_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, generator=g)
    logvar = torch.randn(5, generator=g) * 0.5
    eps = torch.randn(400_000, 5, generator=g)
    z = mean + torch.exp(0.5 * logvar) * eps
    mc = (gaussian_log_density(z, mean, logvar) - gaussian_log_density(z, torch.zeros(5), torch.zeros(5))).mean(0)
    assert torch.allclose(kl_normal_standard(mean, logvar), mc, atol=0.02)


def test_kl_normal_normal_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    mq, lq, mp, lp = (torch.randn(6, generator=g) * s for s in (1.0, 0.5, 1.0, 0.5))
    z = mq + torch.exp(0.5 * lq) * torch.randn(400_000, 6, generator=g)
    mc = (gaussian_log_density(z, mq, lq) - gaussian_log_density(z, mp, lp)).mean(0)
    closed = kl_normal_normal(mq, lq, mp, lp)
    assert torch.allclose(closed, mc, atol=0.03)
    # and it is zero for identical distributions, positive otherwise
    assert torch.allclose(kl_normal_normal(mq, lq, mq, lq), torch.zeros(6), atol=1e-6)
    assert (closed > 0).all()


def _stepwise_prior(model, z):
    """p(z_t | z_<t) evaluated one step at a time with explicit LSTM state."""
    B, T, _ = z.shape
    state = None
    prev = torch.zeros(B, 1, z.shape[-1])
    means, logvars = [], []
    for t in range(T):
        h, state = model.prior_lstm(prev, state)
        m, lv = model.prior_head(h)
        means.append(m)
        logvars.append(lv)
        prev = z[:, t : t + 1]
    return torch.cat(means, 1), torch.cat(logvars, 1)


def test_teacher_forced_prior_equals_stepwise_evaluation(tiny):
    z = torch.randn(3, 4, tiny.config.z_dim)
    mean, logvar = tiny.prior_params(z)
    m2, lv2 = _stepwise_prior(tiny, z)
    assert torch.allclose(mean, m2, atol=1e-5) and torch.allclose(logvar, lv2, atol=1e-5)
    logp = gaussian_log_density(z, m2, lv2).sum((1, 2))
    assert torch.allclose(tiny.prior_log_density(z), logp, atol=1e-4)
    # the prior at t must not see z_t itself: changing z_t changes only later steps
    z2 = z.clone()
    z2[:, 2] += 1.0
    m3, _ = tiny.prior_params(z2)
    assert torch.allclose(m3[:, :3], mean[:, :3]) and not torch.allclose(m3[:, 3], mean[:, 3])


@pytest.mark.parametrize("posterior", ["factorised", "full"])
def test_loss_scores_prior_on_posterior_samples(posterior):
    """kl_z must be KL(q(z_t) || p(z_t | z_<t)) with z_<t drawn from q, not from the prior."""
    model = tiny_model(posterior=posterior)
    x = video_batch(moving_squares(5))
    torch.manual_seed(7)
    out = model.loss(x)
    torch.manual_seed(7)
    post = model.encode(x, sample=True)  # the same random draws, in the same order
    m, lv = _stepwise_prior(model, post.z)
    expected = kl_normal_normal(post.z_mean, post.z_logvar, m, lv).sum((1, 2)).mean()
    assert torch.allclose(out["kl_z"], expected, rtol=1e-4, atol=1e-4)
    kl_f = kl_normal_standard(post.f_mean, post.f_logvar).sum(-1).mean()
    assert torch.allclose(out["kl_f"], kl_f, rtol=1e-5)
    assert torch.allclose(out["loss"], out["recon"] + out["kl_f"] + out["kl_z"], rtol=1e-5)


def test_full_posterior_depends_on_f_and_factorised_does_not():
    for posterior, depends in (("full", True), ("factorised", False)):
        model = tiny_model(posterior=posterior)
        feats = torch.randn(2, 4, model.config.feature_dim)
        m1, _ = model.encode_dynamic(feats, torch.zeros(2, model.config.f_dim))
        m2, _ = model.encode_dynamic(feats, torch.ones(2, model.config.f_dim))
        assert (not torch.allclose(m1, m2)) == depends
    # factorised: z_t depends on frame t only
    model = tiny_model(posterior="factorised")
    feats = torch.randn(1, 4, model.config.feature_dim)
    m1, _ = model.encode_dynamic(feats, None)
    feats2 = feats.clone()
    feats2[:, 3] += 1
    m2, _ = model.encode_dynamic(feats2, None)
    assert torch.allclose(m1[:, :3], m2[:, :3]) and not torch.allclose(m1[:, 3], m2[:, 3])


def test_shapes_of_every_method(tiny):
    cfg = tiny.config
    x = video_batch(moving_squares(3))
    post = tiny.encode(x)
    assert post.f_mean.shape == (3, cfg.f_dim) and post.z_mean.shape == (3, 4, cfg.z_dim)
    assert torch.equal(post.f, post.f_mean) and torch.equal(post.z, post.z_mean)
    assert tiny.decode(post.f, post.z).shape == x.shape
    assert tiny.reconstruct(x).shape == x.shape
    assert tiny.swap(x, x.flip(0)).shape == x.shape
    assert tiny.sample_f(5).shape == (5, cfg.f_dim)
    assert tiny.sample_z(5).shape == (5, 4, cfg.z_dim)
    assert tiny.sample_z(2, steps=9).shape == (2, 9, cfg.z_dim)
    assert tiny.predict(x, 2, 2).shape == x.shape
    out = tiny.decode(post.f, post.z)
    assert out.min() >= 0 and out.max() <= 1


def test_prediction_keeps_context_latents(tiny):
    x = video_batch(moving_squares(2))
    post = tiny.encode(x[:, :2])
    z = tiny.rollout_prior(3, context=post.z)
    assert z.shape == (2, 5, tiny.config.z_dim) and torch.equal(z[:, :2], post.z)


def test_swap_uses_content_f_and_motion_z(tiny):
    a, b = video_batch(moving_squares(1, seed=1)), video_batch(moving_squares(1, seed=2))
    expected = tiny.decode(tiny.encode(a).f, tiny.encode(b).z)
    assert torch.allclose(tiny.swap(a, b), expected)


@pytest.mark.parametrize("posterior", ["factorised", "full"])
def test_both_posteriors_train_and_loss_falls(posterior):
    model = tiny_model(posterior=posterior)
    data = video_batch(moving_squares(32, seed=3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(0)
    losses = []
    for _ in range(40):
        out = model.loss(data)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_gaussian_likelihood_and_speech_codec():
    model = tiny_model(modality="speech", n_bins=12, likelihood="gaussian", likelihood_scale=0.5)
    x = torch.randn(2, 4, 12)
    out = model.loss(x)
    assert torch.isfinite(out["loss"])
    assert model.decode(model.encode(x).f, model.encode(x).z).shape == x.shape
    # gaussian NLL is exactly -log N(x; mean, 0.5^2) summed
    params = model.decode_params(model.encode(x).f, model.encode(x).z)
    nll = -gaussian_log_density(x, params, torch.full_like(params, 2 * torch.log(torch.tensor(0.5)).item())).sum((1, 2))
    assert torch.allclose(model.reconstruction_nll(params, x), nll, rtol=1e-5)


def test_beta_weights_scale_kl_terms(tiny):
    x = video_batch(moving_squares(4))
    torch.manual_seed(3)
    a = tiny.loss(x, beta_f=1.0, beta_z=1.0)
    torch.manual_seed(3)
    b = tiny.loss(x, beta_f=2.0, beta_z=0.5)
    assert torch.allclose(b["loss"], a["recon"] + 2 * a["kl_f"] + 0.5 * a["kl_z"], rtol=1e-5)


def test_config_rejects_bad_values():
    for bad in (dict(posterior="x"), dict(likelihood="poisson"), dict(likelihood="laplace"), dict(frame_size=20), dict(z_dim=0), dict(modality="text")):
        with pytest.raises(ValueError):
            DSAEConfig(**bad)
    with pytest.raises(ValueError):
        DSAEConfig.from_dict({"nonsense": 1})
    assert DSAEConfig.from_dict({"f_dim": 7}).f_dim == 7  # missing keys take defaults


def test_static_encoder_does_not_saturate_on_large_inputs():
    """Unbounded frame features once saturated the LSTM gates, so f became a constant; the frame
    features are normalised, so f keeps depending on the input even for badly scaled frames."""
    model = tiny_model()
    a = video_batch(moving_squares(2, seed=4)) * 100
    b = video_batch(moving_squares(2, seed=5)) * 100
    with torch.no_grad():
        fa, fb = model.encode(a).f_mean, model.encode(b).f_mean
    assert (fa - fb).abs().mean() > 1e-3
    feats = model.frame_features(a)
    assert feats.abs().mean() < 5


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("input_grad", [True, False])
def test_strided_conv_matches_torchs_layer_with_its_gradients(transposed, with_bias, input_grad):
    """The codec's convolutions sum the bias gradient themselves (faster on a CPU): same outputs and
    gradients as torch's own layer, also when the input needs none (the first layer) or there is no bias."""
    from torch import nn

    from models.frames import _strided_conv

    torch.manual_seed(0)
    layer = (nn.ConvTranspose2d if transposed else nn.Conv2d)(6, 5, 4, 2, 1)
    x = torch.randn(3, 6, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_(input_grad)
    g = torch.randn(3, 5, 16, 16) if transposed else torch.randn(3, 5, 4, 4)
    y = _strided_conv(layer, x, bias=with_bias)
    grads = torch.autograd.grad(y, [x, layer.weight, layer.bias][0 if input_grad else 1 :], g, allow_unused=True)
    conv = torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d
    y_ref = conv(x, layer.weight, layer.bias if with_bias else None, stride=2, padding=1)
    ref = torch.autograd.grad(y_ref, [x, layer.weight, layer.bias][0 if input_grad else 1 :], g, allow_unused=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, ref):
        if b is None:
            assert a is None or not a.abs().any()
        else:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # inference and export take torch's own call
        torch.testing.assert_close(_strided_conv(layer, x, bias=with_bias), y_ref, rtol=1e-5, atol=1e-5)


def test_strided_conv_under_bf16_autocast_matches_torch():
    from torch import nn

    from models.frames import _strided_conv

    torch.manual_seed(0)
    layer = nn.Conv2d(8, 16, 4, 2, 1)
    x = torch.randn(4, 8, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = _strided_conv(layer, x)
        y_ref = layer(x)
    assert y.dtype == y_ref.dtype == torch.bfloat16
    g = torch.randn_like(y_ref, dtype=torch.float32)
    grads = torch.autograd.grad(y, [x, layer.weight, layer.bias], g)
    ref = torch.autograd.grad(y_ref, [x, layer.weight, layer.bias], g)
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)
    for a, b in zip(grads, ref):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("film", [True, False])
def test_frame_decoder_is_the_same_function_with_and_without_gradients(film):
    """Training (gradients recorded) adds the last layer's bias with the NCHW conversion; inference does
    not: both give the same contiguous frames, and the same gradients as torch's own layers."""
    import models.frames as frames
    from models.frames import ConvFrameDecoder

    torch.manual_seed(0)
    dec = ConvFrameDecoder(12, 12, 32, 4, film_dim=8 if film else 0)
    with torch.no_grad():
        for p in dec.parameters():
            p.add_(0.1 * torch.randn_like(p))
    h = torch.randn(5, 12, requires_grad=True)
    y = dec(h)
    assert y.shape == (5, 12, 32, 32) and y.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(y, dec(h), rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [h, *dec.parameters()], g)
    # the same decoder with torch's own layers, the last bias added by its layer (the shortcuts off)
    dec_ref = ConvFrameDecoder(12, 12, 32, 4, film_dim=8 if film else 0)
    dec_ref.load_state_dict(dec.state_dict())
    with torch.no_grad():
        y0 = dec_ref(h)
    frames.CPU_SHORTCUTS = False
    try:
        y_ref = dec_ref(h)
    finally:
        frames.CPU_SHORTCUTS = True
    torch.testing.assert_close(y_ref, y0, rtol=1e-5, atol=1e-5)
    ref = torch.autograd.grad(y_ref, [h, *dec_ref.parameters()], g)
    for a, b in zip(grads, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gaussian_likelihood_matches_its_formula_with_its_gradients(dtype):
    """The Gaussian reconstruction term, with and without per-pixel emphasis, has the values and
    gradients of 0.5 ((x - mu) / s)^2 + log(s sqrt(2 pi)) summed per sequence, also for frames laid out
    as video batches are (channels last underneath) and for a bf16 decoder output."""
    import math
    from types import SimpleNamespace

    from models.distributions import LOG_2PI
    from models.likelihoods import reconstruction_nll

    cfg = SimpleNamespace(likelihood="gaussian", likelihood_scale=0.1)
    torch.manual_seed(0)
    params = torch.rand(3, 4, 3, 16, 16).to(dtype).requires_grad_()
    x = torch.rand(3, 4, 16, 16, 3).permute(0, 1, 4, 2, 3)
    w = torch.rand(3, 4, 1, 16, 16)
    nll, weighted = reconstruction_nll(cfg, params, x, w)
    (0.7 * nll.sum() + 1.3 * weighted.sum()).backward()
    grad, params.grad = params.grad.clone(), None
    ref = 0.5 * ((x - params.float()) / 0.1) ** 2 + (0.5 * LOG_2PI + math.log(0.1))
    ref_nll, ref_weighted = ref.flatten(1).sum(1), (ref * w).flatten(1).sum(1)
    (0.7 * ref_nll.sum() + 1.3 * ref_weighted.sum()).backward()
    torch.testing.assert_close(nll, ref_nll, rtol=1e-5, atol=0)
    torch.testing.assert_close(weighted, ref_weighted, rtol=1e-5, atol=0)
    assert grad.dtype == dtype
    torch.testing.assert_close(grad, params.grad, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(reconstruction_nll(cfg, params, x), ref_nll, rtol=1e-5, atol=0)


@pytest.mark.parametrize("T", [1, 2, 5, 8, 16, 40])
def test_lower_median_is_torchs_median(T):
    from models.dsae import lower_median

    x = torch.randint(0, 5, (2, T, 3, 4, 4)).float()  # ties too
    assert torch.equal(lower_median(x, dim=1), x.median(dim=1, keepdim=True).values)
