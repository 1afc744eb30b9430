"""Quality of voice conversion on held-out speakers: voice moved, pitch moved, DNSMOS, words kept.

Run:  python benchmarks/convert_voice_quality.py [--model RUN_DIR] [--limit N] [--sets timit,test-other,vctk] [--json]
      python benchmarks/convert_voice_quality.py --sets val [--json]   # for choosing rendering settings

Needs the shared speech data beside the checkout (../shared/data/speech) and the offline judges of
the ``bench`` extra (``pip install -e .[bench]`` and ``pip install --no-deps resemblyzer``): Resemblyzer's
speaker encoder and DNSMOS P.835 (``speechmos``). Neither is used by dsae itself.

Conversions, female -> male and male -> female, between speakers no shipped model was trained on:
- TIMIT sample (16 speakers; tests only, never shipped): in each dialect region the woman's sa1 in
  the man's voice and the man's sa1 in the woman's; ``--to`` three of the target's sx recordings.
- LibriSpeech test-other: speaker pairs (F, M) (1688, whose label is doubtful, left out), each way;
  the source is the speaker's first utterance of 3-10 s, ``--to`` two other utterances.
- vctk_parallel: 4 speakers reading the same sentences; each sentence of each speaker in the voice
  of each speaker of the other gender, ``--to`` three of the target's recordings of other sentences.
- val (only when asked for, never with the others): the utterances of the training corpus
  (LibriSpeech train-clean-100) that ``dsae train`` holds out, speakers the model was not trained
  on; each speaker's utterance in the voices of two speakers of the other gender, ``--to`` the
  partner's utterance. Settings are chosen on this set; the others report. Voice and pitch are judged
  against the speakers' single utterances (the source's is the converted one: a harder test).

Reported (means over conversions; per set and direction too):
- voice moved: the converted clip's Resemblyzer embedding is closer (cosine) to the target speaker's
  embedding than to the source speaker's; speaker embeddings from the speakers' other recordings
  (neither the converted sentence nor the ``--to`` files; TIMIT's shared sa1/sa2 left out too).
- pitch moved: the converted clip's median F0 (librosa.pyin) is nearer, in log, to the target
  speaker's median F0 than to the source speaker's (medians over the same other recordings).
- DNSMOS P.835 OVRL of clips converted from clean sources (TIMIT, vctk_parallel), of those source
  recordings, and of their reconstructions (``--to`` the source itself).
- voiced frames (pyin) of the converted clips and of their sources, in percent.
- words kept (vctk_parallel): A's sentence in B's voice is closer to B's reading of the sentence
  than A's own recording is, by DTW-aligned mel-cepstral distortion (c1..c24 of 40 mel bands).
- real-time factor (audio seconds per second of conversion compute, all conversions, warm) and the
  process's peak resident memory during the conversions.
"""

from __future__ import annotations

from machine import describe  # benchmarks/machine.py
import argparse
import inspect
import csv
import json
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "speech"
SR = 16000
SETS = ("timit", "test-other", "vctk")  # reported
VAL_CORPUS = "librispeech_subset/train-clean-100"  # the embedded model's training corpus


@dataclass
class Job:
    set: str  # timit | test-other | vctk | val
    direction: str  # F->M | M->F
    source: Path
    targets: list[Path]
    source_speaker: str
    target_speaker: str
    reference: Path | None = None  # vctk: the target speaker's reading of the same sentence
    clean: bool = False  # a clean source: counted in DNSMOS and reconstructed
    out: Path | None = None
    recon: Path | None = None
    seconds: float = 0.0
    compute_s: float = 0.0
    metrics: dict = field(default_factory=dict)


def speakers_of(shared: Path, corpus: str, prefix: str) -> dict[str, tuple[str, list[Path]]]:
    """speaker -> (gender, sorted files) for rows of utterances.csv whose path starts with ``prefix``."""
    out: dict[str, tuple[str, list[Path]]] = {}
    with open(shared / "utterances.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["corpus"] == corpus and row["path"].startswith(prefix):
                out.setdefault(row["speaker"], (row["gender"], []))[1].append(shared / row["path"])
    return {k: (g, sorted(files)) for k, (g, files) in out.items()}


def plan(shared: Path, limit: int | None, sets: tuple[str, ...] = SETS) -> tuple[list[Job], dict[str, list[Path]]]:
    """The conversions and, per speaker, the recordings its judge embedding and median F0 come from."""
    import soundfile as sf

    jobs: list[Job] = []
    judge: dict[str, list[Path]] = {}
    # TIMIT: the woman and the man of each dialect region
    timit = speakers_of(shared, "timit_sample", "timit_sample/")
    regions: dict[str, dict[str, str]] = {}
    for spk, (g, files) in timit.items():
        regions.setdefault(files[0].parent.name.split("-")[0], {})[g] = spk
    for spk, (g, files) in timit.items():
        judge[f"timit/{spk}"] = [f for f in files if f.stem not in ("sa1", "sa2") and not f.stem.startswith("sx")] + [
            f for f in files if f.stem.startswith("sx")
        ][3:]  # si* and the sx files not used as --to
    for direction, (a, b) in (("F->M", ("F", "M")), ("M->F", ("M", "F"))):
        n = 0
        for region in sorted(regions):
            pair = regions[region]
            if a not in pair or b not in pair or (limit and n >= limit):
                continue
            src_files, tgt_files = timit[pair[a]][1], timit[pair[b]][1]
            src = next(f for f in src_files if f.stem == "sa1")
            tgts = [f for f in tgt_files if f.stem.startswith("sx")][:3]
            jobs.append(Job("timit", direction, src, tgts, f"timit/{pair[a]}", f"timit/{pair[b]}", clean=True))
            n += 1
    # LibriSpeech test-other
    lib = {k: v for k, v in speakers_of(shared, "librispeech_subset", "librispeech_subset/test-other/").items() if k != "1688"}
    women = sorted(k for k, (g, _) in lib.items() if g == "F")
    men = sorted(k for k, (g, _) in lib.items() if g == "M")

    def first_source(files: list[Path]) -> Path:
        for f in files:
            if 3.0 <= sf.info(str(f)).duration <= 10.0:
                return f
        return files[0]

    sources = {k: first_source(files) for k, (_, files) in lib.items()}
    for spk, (_, files) in lib.items():
        judge[f"lib/{spk}"] = [f for f in files if f != sources[spk]][2:]  # not the source, not the --to files
    for direction, (xs, ys) in (("F->M", (women, men)), ("M->F", (men, women))):
        for i, (a, b) in enumerate(zip(xs, ys)):
            if limit and i >= limit:
                break
            tgts = [f for f in lib[b][1] if f != sources[b]][:2]
            jobs.append(Job("test-other", direction, sources[a], tgts, f"lib/{a}", f"lib/{b}"))
    # vctk_parallel
    vctk = shared / "vctk_parallel"
    genders = {"p225": "F", "p226": "M", "p227": "M", "p228": "F"}
    files = {s: sorted((vctk / s).glob("*.wav")) for s in genders if (vctk / s).is_dir()}
    if files:
        shared_ids = sorted(set.intersection(*[{f.stem.split("_")[1] for f in fs} for fs in files.values()]))
        for s, fs in files.items():
            judge[f"vctk/{s}"] = fs
        for direction, (ga, gb) in (("F->M", ("F", "M")), ("M->F", ("M", "F"))):
            n = 0
            for sid in shared_ids:
                for a in sorted(s for s in files if genders[s] == ga):
                    for b in sorted(s for s in files if genders[s] == gb):
                        if limit and n >= limit:
                            continue
                        src = vctk / a / f"{a}_{sid}.wav"
                        tgts = [f for f in files[b] if f.stem.split("_")[1] != sid][:3]
                        jobs.append(Job("vctk", direction, src, tgts, f"vctk/{a}", f"vctk/{b}", vctk / b / f"{b}_{sid}.wav", clean=True))
                        n += 1
    return [j for j in jobs if j.set in sets], judge


def plan_val(shared: Path) -> tuple[list[Job], dict[str, list[Path]]]:
    """Conversions between the training corpus's held-out speakers (see the module docstring)."""
    from dsae_cli.data.speech import held_out_utterances
    from dsae_cli.io.audio import SpectrogramConfig

    genders = {spk: g for spk, (g, _) in speakers_of(shared, "librispeech_subset", VAL_CORPUS + "/").items()}
    utts = held_out_utterances(shared / VAL_CORPUS, SpectrogramConfig(sample_rate=SR))
    files = {u.speaker: u.path for u in utts}
    women = sorted(s for s in files if genders.get(s) == "F")
    men = sorted(s for s in files if genders.get(s) == "M")
    jobs = []
    for direction, (xs, ys) in (("F->M", (women, men)), ("M->F", (men, women))):
        for i, a in enumerate(xs):  # every speaker to two speakers of the other gender, in turn
            for b in [ys[(2 * i + k) % len(ys)] for k in range(min(2, len(ys)))]:
                jobs.append(Job("val", direction, files[a], [files[b]], f"val/{a}", f"val/{b}", clean=True))
    return jobs, {f"val/{s}": [p] for s, p in files.items()}


def at_gain(jobs: list[Job], judge_files: dict[str, list[Path]], gain_db: float, folder: Path):
    """The same jobs with every recording replaced by a copy at ``gain_db`` (float WAV, nothing clipped
    below 0 dB)."""
    import soundfile as sf

    copies: dict[Path, Path] = {}

    def copy(p: Path) -> Path:
        if p not in copies:
            y, sr = sf.read(str(p), dtype="float32")
            out = folder / f"{len(copies)}-{p.stem}.wav"
            sf.write(str(out), y * np.float32(10 ** (gain_db / 20)), sr, subtype="FLOAT")
            copies[p] = out
        return copies[p]

    for j in jobs:
        j.source, j.targets = copy(j.source), [copy(t) for t in j.targets]
    return jobs, {k: [copy(p) for p in v] for k, v in judge_files.items()}


def read(path: Path) -> np.ndarray:
    from dsae_cli.io.audio import SpectrogramConfig, read_audio

    return read_audio(path, SpectrogramConfig(sample_rate=SR))


def pyin(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=400, sr=SR, frame_length=1024, hop_length=160)
    return f0, voiced


def mel_cepstrum(y: np.ndarray, n: int = 24) -> np.ndarray:
    """(frames, n) mel-cepstral coefficients c1..cn: the cosine transform of the natural-log mel
    amplitude spectrum (40 bands, floor 80 dB below the loudest), scaled as a real cepstrum
    (ln|H| = c0 + 2 sum c_m cos(m w)), of the recording trimmed of leading and trailing silence."""
    import librosa
    import scipy.fft

    y, _ = librosa.effects.trim(y, top_db=30)
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=160, win_length=400, n_mels=40)
    log_amp = 0.5 * np.log(mel + 1e-8 * mel.max())
    return (scipy.fft.dct(log_amp, type=2, axis=0, norm="ortho") / np.sqrt(2 * len(mel)))[1 : n + 1].T


def mcd(a: np.ndarray, b: np.ndarray) -> float:
    """DTW-aligned mel-cepstral distortion in dB between two recordings."""
    import librosa

    ca, cb = mel_cepstrum(a), mel_cepstrum(b)
    _, path = librosa.sequence.dtw(X=ca.T, Y=cb.T, metric="euclidean")
    diff = ca[path[:, 0]] - cb[path[:, 1]]
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * (diff**2).sum(axis=1))))


def mean(xs) -> float | None:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and np.isnan(x))]
    return round(float(np.mean(xs)), 3) if xs else None


def summary(jobs: list[Job]) -> dict:
    clean = [j for j in jobs if j.clean]
    judged = [j for j in jobs if j.set in ("timit", "test-other", "val")]
    vctk = [j for j in jobs if j.set == "vctk"]
    return {
        "n_conversions": len(jobs),
        "voice_moved": mean(j.metrics["voice_moved"] for j in judged),
        "voice_margin": mean(j.metrics["voice_margin"] for j in judged),
        "pitch_moved": mean(j.metrics["pitch_moved"] for j in judged),
        "dnsmos_converted": mean(j.metrics.get("dnsmos_converted") for j in clean),
        "dnsmos_source": mean(j.metrics.get("dnsmos_source") for j in clean),
        "dnsmos_reconstructed": mean(j.metrics.get("dnsmos_reconstructed") for j in clean),
        "voiced_converted": mean(j.metrics["voiced_converted"] for j in jobs),
        "voiced_source": mean(j.metrics["voiced_source"] for j in jobs),
        "words_kept": mean(j.metrics["words_kept"] for j in vctk),
        "mcd_converted_db": mean(j.metrics["mcd_converted"] for j in vctk),
        "mcd_source_db": mean(j.metrics["mcd_source"] for j in vctk),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="speech checkpoint (default: the embedded model)")
    ap.add_argument("--limit", type=int, default=None, help="at most N conversions per set and direction")
    ap.add_argument("--iterations", type=int, default=None, help="Griffin-Lim iterations (default: convert-voice's)")
    ap.add_argument("--render", default="source-filter", help="convert-voice --render")
    ap.add_argument("--sharpen", type=float, default=None, help="convert_voice(sharpen=) (default: convert-voice's)")
    ap.add_argument("--level", default=None, help="convert_voice(level=): source | decoded (default: convert-voice's)")
    ap.add_argument("--voiced-max-hz", type=float, default=None, help="convert_voice(voiced_max_hz=); 0: no limit (default: convert-voice's)")
    ap.add_argument("--filter-phase", default=None, help="convert_voice(filter_phase=): minimum | zero (default: convert-voice's)")
    ap.add_argument("--match-level", action="store_true", help="convert_voice(match_level=True)")
    ap.add_argument("--no-keep-level", action="store_true", help="convert_voice(keep_level=False)")
    ap.add_argument("--match-spectrum", type=float, default=None, help="convert_voice(match_spectrum=) (default: convert-voice's)")
    ap.add_argument("--strength", type=float, default=None, help="convert_voice(strength=) (default: convert-voice's)")
    ap.add_argument("--pitch", default="target", help="convert-voice --pitch")
    ap.add_argument("--data", type=Path, default=SHARED, help="the shared speech folder")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated sets to run (default: all)")
    ap.add_argument("--val-gain-db", type=float, default=0.0,
                    help="with --sets val: every val recording read at this gain (dB), as from a quieter or louder channel")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if not (args.data / "utterances.csv").is_file():
        sys.exit(f"error: {args.data} has no utterances.csv; this benchmark needs the shared speech data")
    try:
        import resemblyzer  # noqa: F401
        import speechmos  # noqa: F401
    except ImportError as err:
        sys.exit(f"error: {err.name} is missing; pip install -e .[bench] && pip install --no-deps resemblyzer")

    import torch

    from dsae_cli.runtime import load_model_for
    from dsae_cli.voice import convert_voice

    def log(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    model = load_model_for(args.model, "speech", "cpu")
    sets = tuple(s.strip() for s in args.sets.split(",") if s.strip())
    if sets == ("val",):
        jobs, judge_files = plan_val(args.data)
        jobs = [j for d in ("F->M", "M->F") for j in [j for j in jobs if j.direction == d][: args.limit]]
        if args.val_gain_db:
            jobs, judge_files = at_gain(jobs, judge_files, args.val_gain_db, Path(tempfile.mkdtemp(prefix="val-gain-")))
    elif args.val_gain_db:
        sys.exit("error: --val-gain-db applies to --sets val only")
    elif not sets or any(s not in SETS for s in sets):
        sys.exit(f"error: --sets takes a comma-separated list of {', '.join(SETS)}, or val alone")
    else:
        jobs, judge_files = plan(args.data, args.limit, sets)
    opts = dict(iterations=args.iterations, render=args.render, pitch=args.pitch)
    if args.iterations is None:
        from dsae_cli.voice import DEFAULT_ITERATIONS

        opts["iterations"] = DEFAULT_ITERATIONS[args.render]
    if args.sharpen is not None:
        opts["sharpen"] = args.sharpen
    if args.level is not None:
        opts["level"] = args.level
    if args.filter_phase is not None:
        opts["filter_phase"] = args.filter_phase
    if args.match_level:
        opts["match_level"] = True
    if args.no_keep_level:
        opts["keep_level"] = False
    if args.match_spectrum is not None:
        opts["match_spectrum"] = args.match_spectrum
    if args.strength is not None:
        opts["strength"] = args.strength
    if args.voiced_max_hz is not None:
        opts["voiced_max_hz"] = args.voiced_max_hz or None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        convert_voice(model, jobs[0].source, jobs[0].targets, tmp / "warmup.wav", **opts)  # first-call costs
        log(f"converting {len(jobs)} clips ({args.render}, pitch {args.pitch}) ...")
        recons: dict[Path, Path] = {}  # each source reconstructed once
        for i, j in enumerate(jobs):
            j.out = tmp / f"conv{i}.wav"
            res = convert_voice(model, j.source, j.targets, j.out, **opts)
            j.seconds, j.compute_s = res.seconds, res.compute_s
            if j.clean:
                j.recon = recons.get(j.source) or tmp / f"recon{i}.wav"
                if j.source not in recons:
                    convert_voice(model, j.source, [j.source], j.recon, **opts)
                    recons[j.source] = j.recon
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rtf = sum(j.seconds for j in jobs) / sum(j.compute_s for j in jobs)

        log("judging ...")
        from resemblyzer import VoiceEncoder, preprocess_wav
        from speechmos import dnsmos

        encoder = VoiceEncoder("cpu", verbose=False)
        speaker_emb: dict[str, np.ndarray] = {}
        speaker_f0: dict[str, float] = {}
        for spk in sorted({j.source_speaker for j in jobs} | {j.target_speaker for j in jobs}):
            wavs = [read(f) for f in judge_files[spk]]
            speaker_emb[spk] = encoder.embed_speaker([preprocess_wav(w, source_sr=SR) for w in wavs])
            f0s = [pyin(w) for w in wavs[:4]]
            speaker_f0[spk] = float(np.nanmedian(np.concatenate([f[v] for f, v in f0s])))
        ovrl = lambda y: float(dnsmos.run(np.clip(y, -1, 1).astype(np.float32), SR)["ovrl_mos"])  # noqa: E731
        for j in jobs:
            conv, src = read(j.out), read(j.source)
            m = j.metrics
            e = encoder.embed_utterance(preprocess_wav(conv, source_sr=SR))
            cos_t, cos_s = float(e @ speaker_emb[j.target_speaker]), float(e @ speaker_emb[j.source_speaker])
            m["voice_moved"] = float(cos_t > cos_s)
            m["voice_margin"] = cos_t - cos_s
            f0, voiced = pyin(conv)
            f0_src, voiced_src = pyin(src)
            med = float(np.nanmedian(f0[voiced])) if voiced.any() else float("nan")
            lt, ls = np.log(speaker_f0[j.target_speaker]), np.log(speaker_f0[j.source_speaker])
            m["pitch_moved"] = float(not np.isnan(med) and abs(np.log(med) - lt) < abs(np.log(med) - ls))
            m["median_f0"] = round(med, 1)
            m["voiced_converted"] = 100 * float(voiced.mean())
            m["voiced_source"] = 100 * float(voiced_src.mean())
            if j.clean:
                m["dnsmos_converted"] = ovrl(conv)
                m["dnsmos_source"] = ovrl(src)
                m["dnsmos_reconstructed"] = ovrl(read(j.recon))
            if j.reference is not None:
                ref = read(j.reference)
                m["mcd_converted"], m["mcd_source"] = mcd(conv, ref), mcd(src, ref)
                m["words_kept"] = float(m["mcd_converted"] < m["mcd_source"])
            log(
                f"  {j.set:10s} {j.direction} {j.source_speaker} -> {j.target_speaker}: cos target {cos_t:.3f} / source {cos_s:.3f}, "
                f"median F0 {med:.0f} Hz (source speaker {speaker_f0[j.source_speaker]:.0f}, target {speaker_f0[j.target_speaker]:.0f}), "
                f"voiced {m['voiced_converted']:.0f}% (source {m['voiced_source']:.0f}%)"
                + (f", DNSMOS {m['dnsmos_converted']:.2f}" if j.clean else "")
                + (f", MCD {m['mcd_converted']:.2f} dB vs {m['mcd_source']:.2f} dB" if j.reference is not None else "")
            )

    out = {
        "machine": describe(),
        "model_id": getattr(model, "model_id", None),
        "render": args.render,
        "pitch": args.pitch,
        "iterations": opts["iterations"],
        **{k: opts.get(k, inspect.signature(convert_voice).parameters[k].default) for k in ("sharpen", "level", "voiced_max_hz", "filter_phase", "match_level", "keep_level", "match_spectrum", "strength")},
        "limit": args.limit,
        "sets": list(sets),
        "val_gain_db": args.val_gain_db or None,
        "torch_threads": torch.get_num_threads(),
        **summary(jobs),
        "rtf": round(rtf, 1),
        "peak_mb": round(peak_mb, 1),
        "by_direction": {
            f"{s} {d}": summary([j for j in jobs if j.set == s and j.direction == d])
            for s in ("timit", "test-other", "vctk", "val")
            for d in ("F->M", "M->F")
            if any(j.set == s and j.direction == d for j in jobs)
        },
    }
    if args.json:
        print(json.dumps(out))
        return

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.0f}%"

    def num(x, digits=2):
        return "n/a" if x is None else f"{x:.{digits}f}"

    print(f"convert-voice quality, {out['model_id'] or args.model}, {args.render}, pitch {args.pitch}: {len(jobs)} conversions")
    print(
        f"  voice moved (Resemblyzer, {'val' if sets == ('val',) else 'TIMIT + test-other'}): {pct(out['voice_moved'])} (target >= 95%); "
        f"mean margin {num(out['voice_margin'], 3)} (cosine to the target's voice minus to the source's)"
    )
    print(f"  pitch moved (pyin median F0): {pct(out['pitch_moved'])} (target >= 95%)")
    print(
        f"  DNSMOS OVRL (clean sources): converted {num(out['dnsmos_converted'])}, source {num(out['dnsmos_source'])}, "
        f"reconstructed {num(out['dnsmos_reconstructed'])} (targets: converted >= 3.0 and within 0.3 of source; reconstructed within 0.2)"
    )
    print(f"  voiced frames (pyin): converted {num(out['voiced_converted'])}%, source {num(out['voiced_source'])}% (target: within 10 points)")
    print(
        f"  words kept (vctk_parallel, DTW MCD): {pct(out['words_kept'])} (target >= 90%); "
        f"MCD to the target's reading {num(out['mcd_converted_db'])} dB converted vs {num(out['mcd_source_db'])} dB source"
    )
    print(f"  speed {out['rtf']:.1f}x real time (target >= 20x), peak RSS {out['peak_mb']:.0f} MB during the conversions")
    for key, s in out["by_direction"].items():
        print(
            f"    {key:16s} n={s['n_conversions']:3d}: voice {pct(s['voice_moved'])}, pitch {pct(s['pitch_moved'])}, "
            f"DNSMOS {num(s['dnsmos_converted'])}, voiced {num(s['voiced_converted'])}% vs {num(s['voiced_source'])}%, "
            f"words kept {pct(s['words_kept'])}"
        )


if __name__ == "__main__":
    main()
