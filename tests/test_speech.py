"""The speech domain: audio front end, Griffin-Lim, EER, corpus layouts, and the speech commands
(train, convert-voice, evaluate speech) end to end on synthetic voices made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from conftest import voice
from dsae_cli.io import audio as A
from dsae_cli.app import app
from dsae_cli.errors import DsaeError
from dsae_cli.data.speech import load_speech_corpus, scan_corpus, speaker_of, utterance_split
from dsae_cli.evaluate.speaker import equal_error_rate, trial_scores

runner = CliRunner()
SR = 16000
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech"
SPEAKERS = {"anna": (210.0, 1.15), "bert": (105.0, 0.88), "carl": (135.0, 1.0)}  # pitch (Hz), formant scale


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sine(freq: float, seconds: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def peak_hz(y: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()])


def write_corpus(root: Path, layout: str, n_utts: int = 3, seconds: float = 0.8) -> dict[str, str]:
    """A small corpus in one layout; returns {file path relative to root: expected speaker}."""
    expected = {}
    for i, (name, (f0, tract)) in enumerate(SPEAKERS.items()):
        for u in range(n_utts):
            if layout == "librispeech":
                spk = str(100 + i)
                rel = Path(spk) / "42" / f"{spk}-42-{u:04d}.flac"
            elif layout == "timit":
                spk = f"dr{i + 1}-{'f' if f0 > 150 else 'm'}{name}0"
                rel = Path(spk) / f"sx{u}.wav"
            elif layout == "vctk":
                spk = f"p{225 + i}"
                rel = Path("wav48") / spk / f"{spk}_{u:03d}.wav"
            else:
                spk = name
                rel = Path(name) / f"take{u}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, voice(f0, tract, seconds + 0.1 * u, seed=10 * i + u), SR)
            expected[str(rel)] = spk
    return expected


# ------------------------------------------------------------------------------------------ reading


@pytest.mark.parametrize("rate,channels,subtype", [(8000, 1, "PCM_16"), (22050, 2, "PCM_24"), (44100, 2, "FLOAT"), (16000, 1, "PCM_U8")])
def test_read_audio_mixes_to_mono_and_resamples(tmp_path, rate, channels, subtype):
    y = sine(440.0, 0.75, rate)
    data = np.stack([y, np.zeros_like(y)], 1) if channels == 2 else y  # stereo: the tone on the left only
    path = tmp_path / "in.wav"
    sf.write(path, data, rate, subtype=subtype)
    out = A.read_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - 0.75 * SR) <= 1
    assert abs(peak_hz(out) - 440.0) < 5
    expected_peak = 0.5 / channels  # the mean of the channels
    assert abs(np.abs(out[2000:-2000]).max() - expected_peak) < 0.03


def test_read_audio_flac(tmp_path):
    sf.write(tmp_path / "a.flac", sine(300.0, 0.5), SR)
    assert len(A.read_audio(tmp_path / "a.flac")) == 8000


def test_bad_audio_files_raise_one_line_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("this is not audio\n" * 20)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    short = tmp_path / "short.wav"
    sf.write(short, sine(300.0, 0.1), SR)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros(0, np.float32), SR)
    cases = {
        tmp_path / "missing.wav": "not found",
        empty: "empty",
        text: "not a readable audio file",
        silent: "silent",
        short: "shorter than one",
        header_only: "no audio samples",
        tmp_path: "folder",
    }
    for path, words in cases.items():
        with pytest.raises(DsaeError) as err:
            A.read_audio(path)
        assert words in str(err.value) and "\n" not in str(err.value), (path, err.value)


def test_cut_wav_is_refused_but_placeholder_sizes_and_extra_chunks_are_read(tmp_path):
    whole = tmp_path / "whole.wav"
    sf.write(whole, sine(300.0, 1.0), SR)
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) - 4000])
    assert A.wav_shortfall(whole) is None
    promised, present = A.wav_shortfall(cut)
    assert promised - present == 4000
    with pytest.raises(DsaeError, match="is cut short"):
        A.read_audio(cut)
    # a streaming writer's placeholder data size (length unknown when written) is not a cut file
    at = data.index(b"data") + 4
    stream = tmp_path / "stream.wav"
    stream.write_bytes(data[:at] + (0xFFFFFFFF).to_bytes(4, "little") + data[at + 4 :])
    assert A.wav_shortfall(stream) is None
    # an odd-sized chunk before the data (padded to even) is walked over
    fmt_end = data.index(b"data")
    extra = b"LIST" + (3).to_bytes(4, "little") + b"abc\0"
    padded = tmp_path / "padded.wav"
    padded.write_bytes(data[:4] + (len(data) - 8 + len(extra)).to_bytes(4, "little") + data[8:fmt_end] + extra + data[fmt_end:])
    assert A.wav_shortfall(padded) is None and len(A.read_audio(padded)) == SR
    padded_cut = tmp_path / "padded_cut.wav"
    padded_cut.write_bytes(padded.read_bytes()[:-100])
    assert A.wav_shortfall(padded_cut)[0] - A.wav_shortfall(padded_cut)[1] == 100
    assert A.wav_shortfall(tmp_path / "missing.wav") is None


# ------------------------------------------------------------------------------------------ features


def test_features_match_librosa_and_chunks_agree():
    import librosa

    cfg = A.SpectrogramConfig()
    y = voice(150.0, 1.0, 1.3)
    full = A.stft_magnitude(y, cfg)
    ref = np.abs(librosa.stft(y, n_fft=400, hop_length=160, win_length=400, center=True, pad_mode="constant")).T
    assert full.shape == (cfg.n_frames(len(y)), 201) == ref.shape
    assert np.allclose(full, ref, atol=1e-4)
    assert np.allclose(A.stft_magnitude(y, cfg, 37, 90), full[37:90], atol=1e-5)
    logs = A.log_spectrogram(y, cfg)
    assert np.allclose(A.to_magnitude(logs, cfg), full, atol=1e-4)


def test_segments_and_normalisation_round_trip():
    cfg = A.SpectrogramConfig()
    y = np.concatenate([voice(150.0, 1.0, 0.8), np.zeros(int(0.6 * SR), np.float32)])  # speech, then silence
    segs = A.speech_segments(y, cfg)
    assert cfg.n_frames(len(y)) // 20 == 7 and segs.shape[1:] == (20, 201)
    assert 4 <= len(segs) <= 5  # the two silent segments are left out (the fifth holds the speech's last samples)
    norm = A.Normalisation.fit(segs)
    x = norm.apply(segs)
    assert abs(float(x.mean())) < 1e-3 and np.allclose(x.reshape(-1, 201).std(0), 1.0, atol=1e-2)
    assert np.allclose(norm.invert(x), segs, atol=1e-4)
    again = A.Normalisation.from_dict(json.loads(json.dumps(norm.to_dict())))
    assert np.allclose(again.mean, norm.mean, atol=1e-5) and np.allclose(again.std, norm.std, atol=1e-5)
    assert A.SpectrogramConfig.from_dict(cfg.to_dict()) == cfg


def test_segment_starts_cover_every_frame():
    starts = A.segment_starts(47, 20, 10)
    assert list(starts) == [0, 10, 20, 27]
    assert len(A.segment_starts(19, 20, 10)) == 0 and list(A.segment_starts(20, 20, 10)) == [0]


# ------------------------------------------------------------------------------------------ Griffin-Lim


def test_griffin_lim_keeps_length_and_frequency():
    cfg = A.SpectrogramConfig()
    y = sine(1000.0, 0.6)[: 9601]  # an odd length
    out = A.griffin_lim(A.stft_magnitude(y, cfg), cfg, n_iter=16, length=len(y))
    assert len(out) == len(y) and out.dtype == np.float32
    assert abs(peak_hz(out) - 1000.0) < 10
    seeded = A.griffin_lim(A.stft_magnitude(y, cfg), cfg, n_iter=8, seed=3, length=len(y))
    assert np.array_equal(seeded, A.griffin_lim(A.stft_magnitude(y, cfg), cfg, n_iter=8, seed=3, length=len(y)))


def test_chunked_griffin_lim_is_seamless():
    """Rendering in chunks gives exactly one Griffin-Lim over the whole magnitude (zero phase start),
    and with a seed still the input's length with no gap at the joins."""
    cfg = A.SpectrogramConfig()
    y = voice(120.0, 1.0, 3.1)
    mag = A.stft_magnitude(y, cfg)
    whole = A.griffin_lim(mag, cfg, n_iter=8, length=len(y))
    pieces = [p for p, _ in A.render_chunks(len(y), lambda a, b: mag[a:b], cfg, n_iter=8, chunk_frames=90)]
    assert len(pieces) > 3
    assert np.allclose(np.concatenate(pieces), whole, atol=1e-5)
    seeded = np.concatenate([p for p, _ in A.render_chunks(len(y), lambda a, b: mag[a:b], cfg, n_iter=8, seed=1, chunk_frames=90)])
    assert len(seeded) == len(y)
    env = np.sqrt(np.convolve(seeded**2, np.ones(160) / 160, mode="valid"))
    assert env[2000:-2000].min() > 0.02  # no dropout at the joins (the voice never falls below ~0.1)


# ------------------------------------------------------------------------------------------ EER


def test_equal_error_rate_known_cases():
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 1.0
    # hand computed: accepting the top 4 gives FAR 1/4 (one of 4 non-targets) and FRR 0 ...
    # the ROC polyline crosses FAR = FRR at 1/4
    assert equal_error_rate([0.9, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1], [1, 0, 1, 1, 0, 0, 0]) == pytest.approx(0.25)
    # one target and one non-target tied: the ROC is the diagonal, EER 1/2
    assert equal_error_rate([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    # interpolation: targets {3, 1}, non-targets {2, 0}: ROC (0,1) (0,.5) (.5,.5) (.5,0) (1,0) -> 0.5
    assert equal_error_rate([3, 2, 1, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    same = rng.normal(size=20000)
    assert equal_error_rate(same, rng.integers(0, 2, 20000)) == pytest.approx(0.5, abs=0.02)
    # two unit Gaussians 2 apart: EER = Phi(-1) = 0.1587
    s = np.r_[rng.normal(2, 1, 20000), rng.normal(0, 1, 20000)]
    assert equal_error_rate(s, np.r_[np.ones(20000), np.zeros(20000)]) == pytest.approx(0.1587, abs=0.01)
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [1, 1])


def test_trial_scores_are_cosines_of_all_pairs():
    emb = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    scores, labels = trial_scores(emb, np.array(["a", "a", "b"]), standardise=False)
    assert np.allclose(scores, [1.0, 0.0, 0.0]) and list(labels) == [1, 0, 0]
    scores, _ = trial_scores(np.array([[1.0, 10.0], [3.0, 10.0], [1.0, 30.0]]), np.array(["a", "a", "b"]))
    # standardised per dimension the rows become (-1, -1), (2, -1), (-1, 2) (times 1/sqrt(2))
    assert np.allclose(scores, [-1 / np.sqrt(10), -1 / np.sqrt(10), -0.8])


# ------------------------------------------------------------------------------------------ corpora


@pytest.mark.parametrize("layout", ["librispeech", "timit", "vctk", "plain"])
def test_corpus_layouts_give_the_speakers(tmp_path, layout):
    expected = write_corpus(tmp_path, layout, n_utts=2, seconds=0.5)
    (tmp_path / "README.txt").write_text("not audio")
    utts = scan_corpus(tmp_path)
    assert {str(u.path.relative_to(tmp_path)): u.speaker for u in utts} == expected
    cfg = A.SpectrogramConfig()
    data, speakers = load_speech_corpus(tmp_path, cfg)
    assert sorted(speakers) == sorted(set(expected.values()))
    assert data.modality == "speech" and data.x.dtype == np.float32 and data.x.shape[1:] == (20, 201)
    assert len(np.unique(data.groups)) == 3 and len(np.unique(data.labels["utterance"])) == 6
    train, val = utterance_split(data, 0.3, seed=0)
    tu, vu = set(data.labels["utterance"][train]), set(data.labels["utterance"][val])
    assert vu and tu and not (tu & vu)  # whole utterances are held out


def test_corpus_errors(tmp_path):
    with pytest.raises(DsaeError, match="not found"):
        scan_corpus(tmp_path / "nothing")
    with pytest.raises(DsaeError, match="no audio files"):
        scan_corpus(tmp_path)
    sf.write(tmp_path / "loose.wav", voice(150.0, 1.0, 0.5), SR)
    with pytest.raises(DsaeError, match="speakers are unknown"):
        scan_corpus(tmp_path)
    assert speaker_of(tmp_path / "3" / "4" / "3-4-0001.flac", tmp_path) == "3"


@pytest.mark.skipif(not SHARED_SPEECH.is_dir(), reason="shared speech data not present")
def test_shared_corpora_are_read_with_their_speakers():
    timit = scan_corpus(SHARED_SPEECH / "timit_sample")
    assert len(timit) == 160 and len({u.speaker for u in timit}) == 16
    libri = scan_corpus(SHARED_SPEECH / "librispeech_subset" / "test-other")
    assert len(libri) == 100 and {u.speaker for u in libri} >= {"1688", "367"}
    y = A.read_audio(libri[0].path)
    assert y.dtype == np.float32 and len(y) > SR


# ------------------------------------------------------------------------------------------ commands


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speech")
    write_corpus(root, "plain", n_utts=3, seconds=1.0)
    return root


@pytest.fixture(scope="module")
def speech_run(corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "tiny-speech"
    r = invoke("train", "--data", f"speech:{corpus}", "--out", run, "--recipe", "tiny-speech", "--steps", 8, "--eval-every", 4,
               "--checkpoint-every", 4, "--preview-every", 8, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    return run


def test_speech_training_writes_a_complete_run(speech_run, corpus):
    for name in ("config.json", "model.safetensors", "state.pt", "metrics.jsonl", "train.json", "loss.png", "preview.png"):
        assert (speech_run / name).is_file(), name
    meta = json.loads((speech_run / "config.json").read_text())
    assert meta["modality"] == "speech" and meta["config"]["n_bins"] == 201
    assert A.SpectrogramConfig.from_dict(meta["spectrogram"]).seq_len == 20
    assert len(meta["normalisation"]["mean"]) == 201
    best = json.loads((speech_run / "best" / "config.json").read_text())
    assert best["normalisation"] == meta["normalisation"]
    assert json.loads((speech_run / "train.json").read_text())["data"] == f"speech:{corpus}"
    r = invoke("train", "--resume", speech_run, "--steps", 10)
    assert r.exit_code == 0, r.output
    steps = [json.loads(line)["step"] for line in (speech_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 10
    assert json.loads((speech_run / "config.json").read_text())["normalisation"] == meta["normalisation"]


def test_recipe_checks_for_speech_data(corpus, tmp_path):
    r = invoke("train", "--data", f"speech:{corpus}", "--out", tmp_path / "r", "--recipe", "tiny", "--steps", 1)
    assert r.exit_code == 1 and "tiny-speech" in r.output  # a video recipe on speech data names the speech ones
    r = invoke("train", "--data", f"speech:{tmp_path / 'none'}", "--out", tmp_path / "r2", "--recipe", "tiny-speech")
    assert r.exit_code == 1 and "not found" in r.output


def test_convert_voice_keeps_length_and_writes_pictures(speech_run, corpus, tmp_path):
    src, tgt = corpus / "anna" / "take1.wav", corpus / "bert" / "take0.wav"
    out = tmp_path / "out.wav"
    r = invoke("convert-voice", src, "--to", tgt, "--to", corpus / "bert" / "take2.wav", "-o", out,
               "--spectrogram", tmp_path / "spec.png", "--iterations", 4, "--model", speech_run)  # fmt: skip
    assert r.exit_code == 0, r.output
    y, sr = sf.read(out)
    assert sr == SR and len(y) == sf.info(src).frames and np.abs(y).max() > 0
    from PIL import Image

    with Image.open(tmp_path / "spec.png") as im:
        assert im.size[1] >= 201 and im.size[0] > 3 * 100
    # a source at another rate, in stereo: the output lasts as long, at the model's rate
    stereo = tmp_path / "stereo44.wav"
    y44 = voice(130.0, 1.0, 0.9, sr=44100)
    sf.write(stereo, np.stack([y44, y44], 1), 44100, subtype="PCM_24")
    r = invoke("convert-voice", stereo, "--to", tgt, "--model", speech_run, "--iterations", 2, "--seed", 1)
    assert r.exit_code == 0, r.output
    default = tmp_path / "stereo44-to-take0.wav"  # beside the source
    assert abs(sf.info(default).frames - round(0.9 * SR)) <= 1
    r = invoke("convert-voice", stereo, "--to", tgt, "--model", speech_run, "--iterations", 2)
    assert r.exit_code == 0 and (tmp_path / "stereo44-to-take0-1.wav").is_file()  # never overwrites


def test_convert_voice_matches_the_library_call(speech_run, corpus, tmp_path):
    """The chunked conversion equals an unchunked one sample for sample."""
    from dsae_cli.checkpoint import load_model
    from dsae_cli.voice import convert_voice

    model = load_model(speech_run)
    src, tgt = corpus / "carl" / "take2.wav", [corpus / "anna" / "take0.wav"]
    a = convert_voice(model, src, tgt, tmp_path / "a.wav", iterations=3, chunk_frames=30)
    b = convert_voice(model, src, tgt, tmp_path / "b.wav", iterations=3, chunk_frames=10_000)
    assert a.segments == b.segments and a.seconds == pytest.approx(1.2)
    assert np.abs(sf.read(tmp_path / "a.wav")[0] - sf.read(tmp_path / "b.wav")[0]).max() <= 2 / 32768


def test_evaluate_speech_json(speech_run, corpus):
    r = invoke("evaluate", "speech", "--data", corpus, "--json", "--model", speech_run)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("eer_f", "eer_z", "eer_baseline", "n_speakers", "n_utterances", "n_trials"):
        assert key in res, key
    assert res["n_speakers"] == 3 and res["n_utterances"] == 9 and res["n_trials"] == 36
    assert all(0.0 <= res[k] <= 1.0 for k in ("eer_f", "eer_z", "eer_baseline"))
    r = invoke("evaluate", "speech", "--data", corpus, "--model", speech_run)
    assert r.exit_code == 0 and "EER mu_f" in r.output


def test_speech_commands_give_one_line_errors(speech_run, corpus, tmp_path):
    good = corpus / "anna" / "take0.wav"
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "text.wav"
    text.write_text("hello, not audio")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    short = tmp_path / "short.wav"
    sf.write(short, voice(150.0, 1.0, 0.1), SR)
    m = ("--model", speech_run)
    cases = [
        ("convert-voice", tmp_path / "missing.wav", "--to", good, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", empty, "--to", good, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", text, "--to", good, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", silent, "--to", good, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", short, "--to", good, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", good, "--to", short, "-o", tmp_path / "o.wav", *m),
        ("convert-voice", good, "--to", good, "-o", good, *m),  # the output names an input
        ("convert-voice", good, "--to", good, "-o", tmp_path / "o.mp3", *m),
        ("convert-voice", good, "--to", good, "-o", tmp_path / "o.wav", "--model", tmp_path / "nomodel"),
        ("evaluate", "speech", "--data", tmp_path / "nowhere", *m),
    ]
    before = good.read_bytes()
    for args in cases:
        r = invoke(*args)
        assert r.exit_code != 0, args
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (args, r.output)
    assert good.read_bytes() == before and not (tmp_path / "o.wav").exists()


def test_video_model_is_refused_for_speech(corpus, tmp_path):
    from dsae_cli.checkpoint import save_model
    from dsae_cli.train.recipes import load_recipe
    from models import DSAE, DSAEConfig

    video = tmp_path / "video"
    save_model(DSAE(DSAEConfig(**load_recipe("tiny").model)), video)
    good = corpus / "anna" / "take0.wav"
    r = invoke("convert-voice", good, "--to", good, "-o", tmp_path / "o.wav", "--model", video)
    assert r.exit_code == 1 and "video model" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.wav").exists()


def test_partner_table_pairs_segments_of_the_same_utterance():
    from dsae_cli.data.speech import partner_table

    utts = np.array([3, 3, 3, 7, 9, 9, 3, 7])  # utterances need not be contiguous
    partners = partner_table(utts)
    rng = np.random.default_rng(0)
    idx = np.arange(len(utts))
    seen = {i: set() for i in idx}
    for _ in range(200):
        p = partners(idx, rng)
        assert (utts[p] == utts[idx]).all()
        for i, j in zip(idx, p):
            seen[i].add(int(j))
    assert seen[0] == {1, 2, 6} and seen[4] == {5} and seen[3] == {7}  # every other segment, never itself
    assert partners(np.array([0, 4]), np.random.default_rng(5)).tolist() == partners(np.array([0, 4]), np.random.default_rng(5)).tolist()
    single = partner_table(np.array([1, 2]))
    assert single(np.array([0, 1]), rng).tolist() == [0, 1]  # an utterance of one segment pairs with itself


def test_pair_term_decodes_each_segment_with_its_partners_f(corpus, tmp_path):
    import torch

    from dsae_cli.train.recipes import load_recipe
    from models import DSAE, DSAEConfig

    with pytest.raises(ValueError, match="speech"):
        DSAEConfig(pair_weight=1.0)
    torch.manual_seed(0)
    m = DSAE(DSAEConfig(**{**load_recipe("tiny-speech").model, "pair_weight": 0.5}))
    m.train()
    x = torch.randn(6, 20, 201)
    torch.manual_seed(1)
    out = m.loss(x, paired=True)
    torch.manual_seed(1)
    post = m.encode(x, sample=True)
    f_partner = torch.cat([post.f[3:], post.f[:3]])  # a_k <-> b_k
    expected = m.reconstruction_nll(m.decode_params(f_partner, post.z), x).mean()
    assert torch.allclose(out["pair"], expected)
    elbo_part = out["recon"] + m.config.beta_f * out["kl_f"] + m.config.beta_z * out["kl_z"]
    assert torch.allclose(out["loss"], elbo_part + 0.5 * expected)
    assert "pair" not in m.loss(x) and "pair" not in m.eval().loss(x, paired=True)  # unpaired batches, evaluation
    # trained from the command line: batches of pairs, the term logged
    assert_paired_term_trains(corpus, tmp_path, "pair")


def assert_paired_term_trains(corpus, tmp_path, term: str) -> None:
    """``dsae train --set model.TERM_weight=1`` on speech logs the term every step and keeps the weight
    in the config; on video it is refused in one line."""
    run = tmp_path / term
    flag = ("--set", f"model.{term}_weight=1")
    r = invoke("train", "--data", f"speech:{corpus}", "--out", run, "--recipe", "tiny-speech", *flag,
               "--steps", 4, "--eval-every", 4, "--set", "train.log_every=1", "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(term in row and np.isfinite(row[term]) for row in rows)
    assert json.loads((run / "config.json").read_text())["config"][f"{term}_weight"] == 1.0
    r = invoke("train", "--data", "sprites", "--out", tmp_path / "video", "--recipe", "tiny", *flag, "--steps", 1)
    assert r.exit_code == 1 and "speech" in r.output and "Traceback" not in r.output


def test_warp_frequency_moves_a_peak_by_the_factor_and_keeps_alpha_one():
    frames = np.zeros((3, 2, 201), np.float32)
    frames[:, :, 50] = 1.0  # a spectral peak at bin 50
    out = A.warp_frequency(frames, np.array([1.0, 1.2, 1 / 1.2]))
    assert np.allclose(out[0], frames[0])  # no stretch, the same frames
    assert int(np.argmax(out[1, 0])) == 60 and int(np.argmax(out[2, 0])) in (41, 42)  # up, down, by the factor
    assert out.dtype == np.float32 and out.shape == frames.shape
    # compressed: the band's top is filled with the last bin, never read past it
    top = np.arange(201, dtype=np.float32)[None, None, :].repeat(2, 1)
    assert np.isclose(A.warp_frequency(top, np.array([0.5]))[0, 0, -1], 200.0)


def first_paired_batch(corpus, out, **train):
    """A trainer of a tiny paired speech model with these training options, its first batch, the same
    four anchors and partners as stored (no augmentation), and the features' normalisation; the
    trainer is rewound so that its next batch is the first again."""
    from dsae_cli.data.speech import SpeechBatches, prepare_speech_training
    from dsae_cli.train.loop import TrainConfig, Trainer
    from dsae_cli.train.recipes import load_recipe
    from dsae_cli.train.stage import dsae_parts
    from models import DSAE, DSAEConfig

    cfg = DSAEConfig(**{**load_recipe("tiny-speech").model, "pair_weight": 0.5})
    data, _, meta, _ = prepare_speech_training(corpus, cfg, 0.2, 0)
    train_cfg = TrainConfig(batch_size=8, **train)
    parts = dsae_parts(cfg, train_cfg, data, meta)  # as `dsae train` builds it: paired speech batches
    assert isinstance(parts["batches"], SpeechBatches) and parts["batches"].paired
    t = Trainer(DSAE(cfg), data, None, train_cfg, out, **parts)
    t.checkpoint_extra = meta
    batch = t.next_batch()
    assert batch["paired"] and batch["groups"].tolist()[:4] == batch["groups"].tolist()[4:]  # partners share a recording
    x = batch["x"].numpy()
    t.step, t.position = 0, 0
    idx = np.sort(t.order[:4])
    stored = data.x[np.concatenate([idx, t.batches.partners(idx, np.random.default_rng([0, 0, 0]))])]
    return t, x, stored, A.Normalisation.from_dict(meta["normalisation"])


def test_warp_gives_each_pair_one_new_voice_on_the_raw_spectrum(corpus, tmp_path):
    t, x, stored, norm = first_paired_batch(corpus, tmp_path / "w", warp=0.2)
    raw = norm.invert(x)
    plain = norm.invert(stored)
    # each sequence is its stored segment stretched by one factor in [1/1.2, 1.2]; anchor and partner share it
    def err(p, r, a):
        return np.abs(A.warp_frequency(p[None], np.array([a]))[0] - r).mean()

    alphas = np.linspace(1 / 1.2, 1.2, 401)
    best = [alphas[np.argmin([err(p, r, a) for a in alphas])] for p, r in zip(plain, raw)]
    assert all(err(p, r, a) < 0.1 * err(p, r, 1.0) for p, r, a in zip(plain, raw, best))
    assert np.allclose(best[:4], best[4:], atol=0.01) and np.ptp(best[:4]) > 0.01
    # from the command line, and refused for video
    assert_speech_augmentation_trains(corpus, tmp_path, "warp", 0.1)


def assert_speech_augmentation_trains(corpus, tmp_path, name: str, value: float) -> None:
    """``dsae train --set train.NAME=VALUE`` trains on speech and records it in train.json; video refuses
    it in one line."""
    flag = ("--set", f"train.{name}={value}")
    r = invoke("train", "--data", f"speech:{corpus}", "--out", tmp_path / "cli", "--recipe", "tiny-speech", *flag,
               "--steps", 3, "--eval-every", 3, "--preview-every", 0, "--device", "cpu")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "cli" / "train.json").read_text())["train"][name] == value
    r = invoke("train", "--data", "sprites", "--out", tmp_path / "video", "--recipe", "tiny", *flag, "--steps", 1)
    assert r.exit_code == 1 and "speech" in r.output and "Traceback" not in r.output


def paired_training_loss(m, x, groups):
    """The training loss terms of model m on a paired batch x, the posterior sample they were computed on
    (drawn again with the same noise), and the ELBO's part of the loss (its KL terms weighted)."""
    import torch

    m.train()
    torch.manual_seed(1)
    out = m.loss(x, paired=True, groups=groups)
    torch.manual_seed(1)
    post = m.encode(x, sample=True)
    return out, post, out["recon"] + m.config.beta_f * out["kl_f"] + m.config.beta_z * out["kl_z"]


def test_contrast_term_asks_f_to_pick_out_its_partner(corpus, tmp_path):
    import math

    import torch

    from dsae_cli.train.recipes import load_recipe
    from models import DSAE, DSAEConfig
    from models.objectives import CONTRAST_TEMPERATURE, contrast_loss

    with pytest.raises(ValueError, match="speech"):
        DSAEConfig(contrast_weight=1.0)
    m = DSAE(DSAEConfig(**{**load_recipe("tiny-speech").model, "contrast_weight": 2.0}))
    assert CONTRAST_TEMPERATURE == 0.1
    n = 4
    e = torch.eye(8)[:n] * 3.0  # four recordings, orthogonal f
    # partners that agree: the loss is the log-sum over the batch's negatives, exp(-1/0.1) each, near 0
    assert float(contrast_loss(torch.cat([e, e]))) == pytest.approx(math.log(1 + 3 * math.exp(-10)), rel=1e-3)
    # partners that point elsewhere (b_k is a_{k+1}'s look): the loss is large
    assert float(contrast_loss(torch.cat([e, torch.roll(e, 1, 0)]))) > 9.0
    # two pairs of one recording are not each other's negatives
    same = torch.cat([e[:1], e[:1], e[2:]])
    groups = torch.tensor([0, 0, 2, 3] * 2)
    assert float(contrast_loss(torch.cat([same, same]))) > 0.3  # a_0 cannot tell b_0 from b_1 ...
    assert float(contrast_loss(torch.cat([same, same]), groups)) < 1e-3  # ... unless b_1 is known to be a_0's recording
    x = torch.randn(8, 20, 201)
    out, post, elbo_part = paired_training_loss(m, x, groups)
    assert torch.allclose(out["contrast"], contrast_loss(post.f_mean, groups))
    assert torch.allclose(out["loss"], elbo_part + 2.0 * out["contrast"]) and "pair" not in out
    assert "contrast" not in m.loss(x) and "contrast" not in m.eval().loss(x, paired=True)
    # from the command line: batches of pairs without the pair term, the term logged
    assert_paired_term_trains(corpus, tmp_path, "contrast")
