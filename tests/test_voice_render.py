"""Source-filter rendering for convert-voice: the pitch tracker, the excitation, the pitch moved to
the target's, length and chunking kept, --render envelope as the plain envelope rendering, and
one-line errors for bad options. Uses the embedded speech model and synthetic voices."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import voice as synthetic_voice
from dsae_cli.app import app
from dsae_cli.io import audio as A
from dsae_cli.io.excitation import Excitation, PitchMap, lifter, track_pitch

SR = 16000
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def voice(f0: float, tract: float, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """The synthetic voice of test_speech, at a steady level."""
    return synthetic_voice(f0, tract, seconds, SR, seed, tremolo=False)


def pyin_median(y: np.ndarray) -> tuple[float, float]:
    import librosa

    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
    return float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan"), float(voiced.mean())


@pytest.fixture(scope="module")
def model():
    from dsae_cli.runtime import load_model_for

    return load_model_for(None, "speech", "cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("voices")
    sf.write(d / "high.wav", voice(210.0, 1.15, 1.5, seed=1), SR)
    sf.write(d / "low.wav", voice(105.0, 0.88, 1.5, seed=2), SR)
    odd = voice(200.0, 1.1, 1.2345, seed=3)
    sf.write(d / "odd.wav", odd, SR)
    return d


def test_tracker_finds_the_pitch_and_the_silence():
    cfg = A.SpectrogramConfig()
    y = np.concatenate([voice(150.0, 1.0, 1.0), np.zeros(SR // 2, np.float32)])
    p = track_pitch(y, cfg)
    assert len(p.f0) == cfg.n_frames(len(y))
    voiced = p.voiced
    assert voiced[10:90].mean() > 0.9 and voiced[-30:].mean() == 0
    assert abs(np.median(p.f0[voiced]) / 150.0 - 1) < 0.03
    mean, spread = p.log_stats()
    assert abs(np.exp(mean) / 150 - 1) < 0.03 and spread < 0.1


def test_tracker_follows_a_glide_through_noisy_frames_without_octave_jumps():
    """A pulse train gliding 120 -> 180 Hz, with a stretch where noise as loud as the pulses covers it:
    the Viterbi path keeps to the contour (no octave jumps, within 3%) and blocks agree with the whole."""
    cfg = A.SpectrogramConfig()
    n = 2 * SR
    f = np.linspace(120.0, 180.0, n)
    phase = np.cumsum(f / SR)
    y = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float32)
    y = np.convolve(y, np.exp(-np.arange(80) / 15.0), mode="same").astype(np.float32)  # a formant-ish ring
    noisy = slice(int(0.8 * SR), int(1.1 * SR))
    y[noisy] += np.random.default_rng(0).standard_normal(noisy.stop - noisy.start).astype(np.float32) * y.std()
    p = track_pitch(y, cfg)
    truth = np.interp(np.arange(len(p.f0)) * cfg.hop_length, np.arange(n), f)
    inner = slice(5, len(p.f0) - 5)
    assert p.voiced[inner].mean() > 0.95
    assert np.abs(np.log2(p.f0[inner] / truth[inner])).max() < np.log2(1.03)
    q = track_pitch(y, cfg, block=37)
    assert np.allclose(q.f0, p.f0) and np.array_equal(q.voicing, p.voicing)


def test_excitation_has_peaks_at_multiples_of_f0():
    cfg = A.SpectrogramConfig()
    n = 100
    ex = Excitation(np.full(n, 200.0), np.ones(n, np.float32), cfg, max_voicing=1.0)
    mag = np.abs(ex.frames(0, n)).mean(axis=0)  # bins 40 Hz apart: harmonics on bins 5, 10, ...
    harmonics = np.arange(5, 190, 5)
    assert mag[harmonics].min() > 10 * mag[harmonics + 2].max()
    assert mag[harmonics].min() > 10 * mag[harmonics - 2].max()
    assert np.argmax(mag[1:20]) + 1 in (5, 10, 15)
    # unvoiced: noise, flat on average; chunks of frames agree with the whole
    noise = Excitation(np.full(n, 200.0), np.zeros(n, np.float32), cfg)
    flat = np.abs(noise.frames(0, n)).mean(axis=0)[5:-5]
    assert flat.max() < 2 * flat.min()
    assert np.allclose(ex.frames(30, 60), ex.frames(0, n)[30:60], atol=1e-4)


def test_shape_keeps_the_envelope_energy_and_lifter_keeps_smooth_frames():
    cfg = A.SpectrogramConfig()
    n = 20
    env = np.exp(-np.linspace(0, 6, cfg.n_bins))[None, :].repeat(n, 0).astype(np.float32)
    out = Excitation(np.full(n, 130.0), np.full(n, 0.8, np.float32), cfg).shape(env, 0, n)
    assert np.iscomplexobj(out) and out.shape == env.shape
    assert np.allclose((np.abs(out) ** 2).sum(1), (env**2).sum(1), rtol=1e-3)
    smooth = np.log(env)
    assert np.abs(lifter(smooth) - smooth)[:, 5:-5].max() < 0.05
    rippled = smooth + 0.5 * np.cos(2 * np.pi * np.arange(cfg.n_bins) / 4)[None, :]  # F0 = 160 Hz ripple
    assert np.abs(lifter(rippled) - smooth)[:, 5:-5].max() < 0.1


def test_pitch_map_moves_mean_and_spread():
    m = PitchMap((np.log(200.0), 0.2), (np.log(100.0), 0.1))
    assert np.isclose(m(np.array([200.0]))[0], 100.0)
    assert np.isclose(m(np.array([200.0 * np.exp(0.2)]))[0], 100.0 * np.exp(0.1))


@pytest.mark.parametrize("pitch, expected", [("target", 105.0), ("source", 210.0)])
def test_source_filter_moves_the_pitch(model, clips, tmp_path, pitch, expected):
    from dsae_cli.voice import convert_voice

    out = tmp_path / "out.wav"
    res = convert_voice(model, clips / "high.wav", [clips / "low.wav"], out, iterations=16, pitch=pitch)
    y, sr = sf.read(out, dtype="float32")
    assert sr == SR and len(y) == len(sf.read(clips / "high.wav")[0]) and res.clipped == 0
    median, voiced = pyin_median(y)
    assert abs(np.log(median / expected)) < np.log(1.1), (pitch, median)
    assert voiced > 0.5


def test_lengths_chunks_and_envelope_render(model, clips, tmp_path):
    from dsae_cli.io.render import render_chunks
    from dsae_cli.voice import ConvertedSpectrogram, SpeechCodec, convert_voice

    src, tgt = clips / "odd.wav", clips / "low.wav"
    n = len(sf.read(src)[0])
    a = convert_voice(model, src, [tgt], tmp_path / "a.wav", iterations=3, chunk_frames=30)
    b = convert_voice(model, src, [tgt], tmp_path / "b.wav", iterations=3, chunk_frames=10_000)
    ya, yb = sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0]
    assert len(ya) == len(yb) == n and a.seconds == b.seconds
    assert np.abs(ya - yb).max() < 2e-4  # chunks join exactly (16-bit rounding aside)
    # --render envelope is the decoded envelope alone, from zero phase
    r = invoke("convert-voice", src, "--to", tgt, "-o", tmp_path / "env.wav", "--render", "envelope", "--iterations", 3)
    assert r.exit_code == 0, r.output
    codec = SpeechCodec.of(model)
    s = A.read_audio(src, codec.spec)
    f = codec.static_latent([A.read_audio(tgt, codec.spec)])
    expected = np.concatenate([p for p, _ in render_chunks(len(s), ConvertedSpectrogram(codec, s, f), codec.spec, 3)])
    got = sf.read(tmp_path / "env.wav", dtype="float32")[0]
    assert len(got) == n and np.abs(got - np.clip(expected, -1, 1)).max() < 2e-4


def test_bad_render_options_are_one_line_errors(clips, tmp_path):
    src, tgt = clips / "high.wav", clips / "low.wav"
    for args in (("--render", "world"), ("--pitch", "up"), ("--render", "")):
        r = invoke("convert-voice", src, "--to", tgt, "-o", tmp_path / "o.wav", *args)
        assert r.exit_code != 0, args
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and args[0] in lines[0], (args, r.output)
    assert not (tmp_path / "o.wav").exists()


def test_library_call_checks_the_options(model, clips, tmp_path):
    from dsae_cli.errors import DsaeError
    from dsae_cli.voice import convert_voice

    with pytest.raises(DsaeError, match="--render"):
        convert_voice(model, clips / "high.wav", [clips / "low.wav"], tmp_path / "o.wav", render="world")
    with pytest.raises(DsaeError, match="--pitch"):
        convert_voice(model, clips / "high.wav", [clips / "low.wav"], tmp_path / "o.wav", pitch="down")


def test_sharpen_deepens_the_envelope_and_keeps_level_and_tilt():
    import scipy.fft

    cfg = A.SpectrogramConfig()
    bins = np.arange(cfg.n_bins)
    env = (-3.0 * bins / cfg.n_bins + np.exp(-(((bins - 40) / 8.0) ** 2)) + 0.6 * np.exp(-(((bins - 110) / 10.0) ** 2)))[None, :]
    plain, sharp = lifter(env), lifter(env, sharpen=0.5)
    cp, cs = (scipy.fft.dct(x.astype(np.float64), type=2, axis=-1, norm="ortho")[0] for x in (plain, sharp))
    assert np.allclose(cs[:2], cp[:2], atol=1e-5)  # level and tilt kept
    assert np.allclose(cs[2:], 1.5 * cp[2:], atol=1e-5)
    peak, valley = 40, 75  # the formant's peak rises against the trough between the formants
    assert (sharp[0, peak] - sharp[0, valley]) > 1.3 * (plain[0, peak] - plain[0, valley])


def test_zero_iterations_and_sharpen_render_the_whole_clip(model, clips, tmp_path):
    from dsae_cli.errors import DsaeError
    from dsae_cli.voice import convert_voice

    src, tgt = clips / "high.wav", clips / "low.wav"
    n = len(sf.read(src)[0])
    convert_voice(model, src, [tgt], tmp_path / "a.wav", iterations=0, sharpen=0.3, chunk_frames=40)
    convert_voice(model, src, [tgt], tmp_path / "b.wav", iterations=0, sharpen=0.3)
    ya, yb = sf.read(tmp_path / "a.wav")[0], sf.read(tmp_path / "b.wav")[0]
    assert len(ya) == len(yb) == n and np.abs(ya - yb).max() < 2e-4
    median, voiced = pyin_median(yb.astype(np.float32))
    assert abs(np.log(median / 105.0)) < np.log(1.1) and voiced > 0.5
    with pytest.raises(DsaeError, match="--iterations"):
        convert_voice(model, src, [tgt], tmp_path / "c.wav", iterations=0, render="envelope")
    assert not (tmp_path / "c.wav").exists()


def test_voiced_max_frequency_puts_noise_above_it():
    cfg = A.SpectrogramConfig()
    n, f0 = 40, 160.0  # harmonics every 4 bins (40 Hz each)
    hz = np.arange(cfg.n_bins) * cfg.sample_rate / cfg.n_fft

    def peakiness(ex, band):
        """Mean magnitude at the harmonics' bins over that halfway between them, within a band."""
        mag = np.abs(ex.frames(5, n - 5)).mean(0)
        on, off = np.arange(cfg.n_bins) % 4 == 0, np.arange(cfg.n_bins) % 4 == 2
        return float(mag[band & on].mean() / mag[band & off].mean())

    full = Excitation(np.full(n, f0), np.ones(n, np.float32), cfg)
    split = Excitation(np.full(n, f0), np.ones(n, np.float32), cfg, voiced_max_hz=2000.0)
    low, high = (hz > 300) & (hz < 1800), hz > 3000
    assert peakiness(split, low) > 3.0  # harmonics kept below
    assert peakiness(full, high) > 3.0 and peakiness(split, high) < 1.5  # noise above: no harmonic peaks
    e_full, e_split = (float((np.abs(ex.frames(5, n - 5))[:, high] ** 2).sum()) for ex in (full, split))
    assert 0.5 < e_split / e_full < 2.0  # at about the same level
    # chunks of frames agree with the whole
    assert np.allclose(split.frames(5, 25)[10:], split.frames(15, 25), atol=1e-4)


def test_source_level_keeps_the_sources_loudness_contour(model, clips, tmp_path):
    from dsae_cli.errors import DsaeError
    from dsae_cli.voice import convert_voice

    y = voice(180.0, 1.0, 1.5, seed=4)
    y[8000:14000] *= 0.001  # a pause of 0.4 s, 60 dB down
    sf.write(tmp_path / "pause.wav", y, SR)
    convert_voice(model, tmp_path / "pause.wav", [clips / "low.wav"], tmp_path / "out.wav", iterations=0, level="source")
    out = sf.read(tmp_path / "out.wav", dtype="float32")[0]
    rms = lambda x: float(np.sqrt((x.astype(np.float64) ** 2).mean()))  # noqa: E731
    assert rms(out[9000:13000]) < 0.01 * rms(out[2000:7000])  # the pause stays quiet
    assert 0.5 < rms(out[2000:7000]) / rms(y[2000:7000]) < 2.0
    with pytest.raises(DsaeError, match="level"):
        convert_voice(model, tmp_path / "pause.wav", [clips / "low.wav"], tmp_path / "o.wav", level="loud")


def test_static_latent_does_not_depend_on_reading_in_chunks(model, clips):
    from dsae_cli.voice import SpeechCodec

    codec = SpeechCodec.of(model)
    s = A.read_audio(clips / "odd.wav", codec.spec)
    whole = codec.static_latent([s])
    segs = codec.utterance_segments(s)
    f, _ = codec.encode(segs)
    assert np.allclose(whole, f.mean(axis=0), atol=1e-5)


def test_minimum_phase_of_a_known_filter():
    """A minimum-phase FIR filter's phase is recovered from its magnitude alone, and a filter with
    the same magnitude but a maximum-phase zero is not what comes back."""
    from dsae_cli.io.excitation import minimum_phase

    n_fft = 400
    for h in ([1.0, -0.5], [1.0, 0.9, 0.2], [2.0, -1.2, 0.3, 0.1]):
        H = np.fft.rfft(np.array(h), n=n_fft)
        phase = minimum_phase(np.log(np.abs(H))[None], n_fft)[0]
        assert np.abs(np.angle(np.exp(1j * (phase - np.angle(H))))).max() < 1e-6, h
    H_max = np.fft.rfft(np.array([-0.5, 1.0]), n=n_fft)  # zero outside the unit circle
    phase = minimum_phase(np.log(np.abs(H_max))[None], n_fft)[0]
    assert np.abs(np.angle(np.exp(1j * (phase - np.angle(H_max))))).max() > 0.5


def test_minimum_phase_rendering_keeps_length_and_spectrum(model, clips, tmp_path):
    from dsae_cli.voice import convert_voice

    src, tgt = clips / "high.wav", clips / "low.wav"
    zero = convert_voice(model, src, [tgt], tmp_path / "z.wav", filter_phase="zero")
    mini = convert_voice(model, src, [tgt], tmp_path / "m.wav", filter_phase="minimum")
    yz, ym = sf.read(tmp_path / "z.wav", dtype="float32")[0], sf.read(tmp_path / "m.wav", dtype="float32")[0]
    assert len(yz) == len(ym) == len(sf.read(src)[0]) and zero.clipped == mini.clipped == 0
    assert np.abs(yz - ym).max() > 1e-3  # a different waveform ...
    cfg = A.SpectrogramConfig()
    lz, lm = A.log_spectrogram(yz, cfg).mean(0), A.log_spectrogram(ym, cfg).mean(0)
    assert np.abs(lz - lm)[5:180].mean() < 0.25  # ... with about the same long-term spectrum
    assert abs(np.log(pyin_median(ym)[0] / pyin_median(yz)[0])) < 0.05
    from dsae_cli.errors import DsaeError

    with pytest.raises(DsaeError, match="filter_phase"):
        convert_voice(model, src, [tgt], tmp_path / "o.wav", filter_phase="linear")


def test_a_quieter_copy_converts_to_a_quieter_copy(model, clips, tmp_path):
    """match_level: the source is read at the level of the training speech, so its own level only
    scales the output."""
    from dsae_cli.voice import SpeechCodec, convert_voice

    y = sf.read(clips / "high.wav", dtype="float32")[0]
    sf.write(tmp_path / "quiet.wav", y / 8, SR, subtype="FLOAT")
    codec = SpeechCodec.of(model)
    g, g_quiet = codec.level_gain(y), codec.level_gain(y / 8)
    assert abs(g_quiet / g - 8) < 0.05
    convert_voice(model, clips / "high.wav", [clips / "low.wav"], tmp_path / "a.wav", match_level=True)
    convert_voice(model, tmp_path / "quiet.wav", [clips / "low.wav"], tmp_path / "b.wav", match_level=True)
    a, b = sf.read(tmp_path / "a.wav", dtype="float32")[0], sf.read(tmp_path / "b.wav", dtype="float32")[0]
    assert np.abs(a / 8 - b).max() < 2e-3 * np.abs(a).max()
    # without it, the quiet copy is read as a different recording
    convert_voice(model, tmp_path / "quiet.wav", [clips / "low.wav"], tmp_path / "c.wav")
    c = sf.read(tmp_path / "c.wav", dtype="float32")[0]
    assert np.abs(a / 8 - c).max() > 2e-2 * np.abs(a).max()


def test_the_output_follows_the_sources_levels(model, clips, tmp_path):
    """keep_level: speech comes out as loud as the source's and a pause as quiet, converted to the
    source's own voice or to another; without it, speech is quieter and the pause louder."""
    from dsae_cli.voice import convert_voice

    rng = np.random.default_rng(0)
    y = sf.read(clips / "high.wav", dtype="float32")[0]
    pause = (1e-3 * rng.standard_normal(SR // 2)).astype(np.float32)
    sf.write(tmp_path / "src.wav", np.concatenate([y, pause, y]), SR, subtype="FLOAT")

    def levels(p):  # dB of 25 ms frames: the loud speech (90th percentile) and the pause (median of its frames)
        x = sf.read(p, dtype="float64")[0]
        db = 10 * np.log10((x[: len(x) // 400 * 400].reshape(-1, 400) ** 2).mean(1) + 1e-12)
        mid = slice((len(y) + 2000) // 400, (len(y) + SR // 2 - 2000) // 400)
        return np.percentile(db, 90), np.median(db[mid])

    speech, quiet = levels(tmp_path / "src.wav")
    for to in (tmp_path / "src.wav", clips / "low.wav"):
        convert_voice(model, tmp_path / "src.wav", [to], tmp_path / "kept.wav")
        s, q = levels(tmp_path / "kept.wav")
        assert abs(s - speech) < 1.5 and q < quiet + 3.0, (to.name, s - speech, q - quiet)
    convert_voice(model, tmp_path / "src.wav", [tmp_path / "src.wav"], tmp_path / "env.wav", keep_level=False)
    s_env, _ = levels(tmp_path / "env.wav")
    assert s_env < speech - 2.0


def test_map_levels_is_monotone_and_extends_with_slope_one():
    from dsae_cli.voice import map_levels

    frm, to = np.array([0.0, 1.0, 2.0]), np.array([-1.0, 1.0, 5.0])
    p = np.array([-2.0, 0.0, 0.5, 2.0, 4.0])
    assert np.allclose(map_levels(p, frm, to), [-3.0, -1.0, 0.0, 5.0, 7.0])
    assert np.allclose(map_levels(p, np.zeros(1), np.full(1, 2.0)), p + 2.0)



def test_spectrum_offset_finds_what_the_decoding_misses_and_shapes_the_envelope(model, clips):
    """spectrum_offset: a recording boosted by 12 dB in 2.5-4.5 kHz, decoded with the plain
    recording's f, misses the boost, and the offset finds it; the offset then changes each rendered
    frame's shape by exactly itself and leaves its energy."""
    from dsae_cli.io.excitation import Excitation
    from dsae_cli.voice import ConvertedSpectrogram, SpeechCodec

    cfg = A.SpectrogramConfig()
    codec = SpeechCodec.of(model)
    y = sf.read(clips / "low.wav", dtype="float32")[0]
    hz = np.fft.rfftfreq(len(y), 1 / SR)
    boosted = np.fft.irfft(np.fft.rfft(y) * np.where((hz > 2500) & (hz < 4500), 10 ** (12 / 20), 1.0), len(y)).astype(np.float32)
    f = codec.static_latent([y])
    plain, boost = codec.spectrum_offset([y], f), codec.spectrum_offset([boosted], f)
    assert plain.shape == (cfg.n_bins,) and np.isfinite(plain).all()
    bins = np.arange(cfg.n_bins) * SR / cfg.n_fft
    gap = boost - plain  # 12 dB = 1.38 in natural-log magnitude
    assert gap[(bins > 3000) & (bins < 4000)].mean() > 0.7 and abs(gap[(bins > 500) & (bins < 1800)].mean()) < 0.3

    n = cfg.n_frames(len(y))
    ex = Excitation(np.full(n, 110.0), np.ones(n, np.float32), cfg)
    a, b = (ConvertedSpectrogram(codec, y, f, ex, 0.6, offset=o)(0, n) for o in (None, gap.astype(np.float32)))
    shift = np.log(np.abs(b) + 1e-12) - np.log(np.abs(a) + 1e-12) - gap
    # the shape moves by the offset (up to the log floor that to_magnitude takes off quiet bins)
    assert np.percentile(np.abs(shift - np.median(shift, 1, keepdims=True)), 90) < 0.05  # against a 0.9 boost
    assert np.allclose((np.abs(a) ** 2).sum(1), (np.abs(b) ** 2).sum(1), rtol=1e-3)  # the energy stays


def test_strength_goes_past_the_target_and_leaves_reconstructions_alone(model, clips, tmp_path):
    """strength s decodes with f_source + s (f_target - f_source): a reconstruction (--to the source
    itself) is the same at every strength, a conversion is not; 0 or less is a one-line error."""
    from dsae_cli.errors import DsaeError
    from dsae_cli.voice import convert_voice

    src, tgt = clips / "high.wav", clips / "low.wav"

    def render(name, to, strength):
        convert_voice(model, src, [to], tmp_path / name, strength=strength)
        return sf.read(tmp_path / name, dtype="float32")[0]

    assert np.array_equal(render("r1.wav", src, 1.0), render("r2.wav", src, 1.6))
    plain, further = render("c1.wav", tgt, 1.0), render("c2.wav", tgt, 1.6)
    assert plain.shape == further.shape and not np.allclose(plain, further, atol=1e-3)
    with pytest.raises(DsaeError, match="--strength"):
        convert_voice(model, src, [tgt], tmp_path / "o.wav", strength=0.0)
    r = invoke("convert-voice", src, "--to", tgt, "-o", tmp_path / "o.wav", "--strength", "-1")
    assert r.exit_code != 0 and r.output.strip().startswith("error:") and "--strength" in r.output
    assert not (tmp_path / "o.wav").exists()
