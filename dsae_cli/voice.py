"""Voice conversion with a speech DSAE: the words of one recording in the voice of another.

The static latent f carries the speaker, the dynamic latents z_1:T what is said (Li & Mandt, 2018,
section 5.2). :func:`convert_voice` keeps the source's z_1:T segment by segment, replaces f by the
target's (the mean posterior mean over all of the target's segments, pooled over several files),
decodes, undoes the feature normalisation and renders audio with fast Griffin-Lim.

The decoder draws a smooth spectral envelope, without the harmonics of voiced speech. By default
(source-filter rendering, :mod:`dsae_cli.io.excitation`) the envelope is multiplied by an excitation:
harmonics at the source's F0 contour moved to the target's log-F0 mean and spread, noise where the
source is unvoiced; Griffin-Lim starts from the excitation's phase. ``render="envelope"`` renders the
envelope alone.

The source is cut into T-frame segments every T/2 frames; decoded segments are averaged with a
smooth window where they overlap, so segment borders leave no seams, and every frame of the source
is covered, so the output has the source's length and timing. Decoding and rendering run chunk by
chunk (:func:`dsae_cli.io.render.render_chunks`), streaming into the output file: working memory does
not grow with the length of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsae_cli.io import audio as A
from dsae_cli.io.render import render_chunks, spectrogram_picture
from dsae_cli.errors import DsaeError

PICTURE_FRAMES = 500  # frames (5 s) of each recording drawn in the --spectrogram picture


@dataclass
class ConversionResult:
    output: Path
    seconds: float  # duration of source and output
    sample_rate: int
    segments: int  # source segments converted
    target_seconds: float  # target speech pooled into f
    clipped: int  # output samples clipped to +-1
    compute_s: float  # wall time of the conversion (reading to writing)


@dataclass
class SpeechCodec:
    """A speech model with its front end: encode segments, decode latents, in numpy."""

    model: object
    spec: A.SpectrogramConfig
    norm: A.Normalisation
    device: str = "cpu"
    batch: int = 512

    @classmethod
    def of(cls, model, device: str = "cpu") -> "SpeechCodec":
        if model.config.modality != "speech":
            raise DsaeError("this model is a video model; pass a speech model with --model")
        spec, norm = A.front_end_of(model)
        return cls(model, spec, norm, device)

    def encode(self, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means (f (N, f_dim), z (N, T, z_dim)) of normalised segments (N, T, n_bins)."""
        import torch

        fs, zs = [], []
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(segments), self.batch):
                x = torch.from_numpy(np.ascontiguousarray(segments[i : i + self.batch], np.float32)).to(self.device)
                post = self.model.encode(x)
                fs.append(post.f_mean.cpu().numpy())
                zs.append(post.z_mean.cpu().numpy())
        return np.concatenate(fs), np.concatenate(zs)

    def decode(self, f: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Mean normalised log-spectrogram (N, T, n_bins) for one f (f_dim,) and z (N, T, z_dim)."""
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(z), self.batch):
                zz = torch.from_numpy(np.ascontiguousarray(z[i : i + self.batch], np.float32)).to(self.device)
                ff = torch.from_numpy(np.asarray(f, np.float32)).to(self.device).expand(len(zz), -1)
                out.append(self.model.decode(ff, zz).cpu().numpy())
        return np.concatenate(out)

    def utterance_segments(self, audio: np.ndarray) -> np.ndarray:
        """Normalised non-overlapping segments of an utterance, quiet ones left out."""
        return self.norm.apply(A.speech_segments(audio, self.spec))

    def level_gain(self, audio: np.ndarray, seconds: float = 120.0) -> float:
        """The gain that brings a recording to the level of the model's training speech: the mean
        log-magnitude of its non-quiet frames (at most its first ``seconds``) matched to the training
        frames' (the front end's normalisation mean). 1 when there is no speech to measure."""
        spec = self.spec
        frames = A.speech_segments(audio[: int(seconds * spec.sample_rate)], spec).reshape(-1, spec.n_bins)
        if len(frames) == 0:
            return 1.0
        mag = np.maximum(np.exp(frames.astype(np.float64)) - spec.log_floor, 0.0)
        target, gain = float(self.norm.mean.astype(np.float64).mean()), 1.0
        for _ in range(6):  # log(g |X| + floor) is not linear in log g near the floor: a few fixed-point steps
            gain *= float(np.exp(target - np.log(gain * mag + spec.log_floor).mean()))
            gain = float(np.clip(gain, 1e-3, 1e3))
        return gain

    def _own_decoding(self, audio: np.ndarray, f: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The whole segments in the first ``seconds`` of ``audio``: their STFT magnitudes and their
        decoding with ``f`` (log-magnitude frames), ``(frames, n_bins)`` each; None for less than a segment."""
        spec, T = self.spec, self.spec.seq_len
        n = min(spec.n_frames(len(audio)), int(seconds * spec.sample_rate) // spec.hop_length) // T * T
        if n == 0:
            return None
        mag = A.stft_magnitude(audio, spec, 0, n)
        _, z = self.encode(self.norm.apply(np.log(mag + spec.log_floor).reshape(-1, T, spec.n_bins)))
        return mag, self.norm.invert(self.decode(f, z)).reshape(-1, spec.n_bins)

    def level_map(self, audio: np.ndarray, f: np.ndarray, seconds: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles 1..99 of the frame log-powers of ``audio``'s decoding with ``f`` (its smooth
        envelopes) and of ``audio``'s own frames, over its first ``seconds``, silences included: with
        :func:`map_levels`, a frame rendered at its mapped envelope power follows the recording's own
        levels. An envelope lies below the harmonic peaks that carry a voiced frame's power, and a
        decoder draws silence louder and speech softer than they were; the map undoes both."""
        from dsae_cli.io.excitation import lifter

        spec = self.spec
        own = self._own_decoding(audio, f, seconds)
        if own is None:
            return np.zeros(1), np.zeros(1)
        mag, dec = own
        p_src = np.log((mag.astype(np.float64) ** 2).sum(-1) + 1e-20)
        dec = lifter(dec, sample_rate=spec.sample_rate)
        p_dec = np.log((A.to_magnitude(dec, spec).astype(np.float64) ** 2).sum(-1) + 1e-20)
        q = np.arange(1, 100)
        return np.percentile(p_dec, q), np.percentile(p_src, q)

    def spectrum_offset(self, audios: list[np.ndarray], f: np.ndarray, seconds: float = 120.0) -> np.ndarray:
        """How the recordings' smooth log-spectrum differs, on average over their speech frames, from
        their own decoding with ``f`` (n_bins,): what of the voice's long-term spectrum the decoder
        does not draw. Both sides are smoothed alike (:func:`excitation.lifter`); speech frames are those
        within 30 dB of the recording's loud ones; at most ``seconds`` of each recording are read."""
        from dsae_cli.io.excitation import lifter

        spec = self.spec
        total, count = np.zeros(spec.n_bins), 0
        for audio in audios:
            own = self._own_decoding(audio, f, seconds)
            if own is None:
                continue
            mag, dec = own
            raw = lifter(np.log(mag + spec.log_floor), sample_rate=spec.sample_rate)
            dec = lifter(dec, sample_rate=spec.sample_rate)
            power = np.log((A.to_magnitude(raw, spec).astype(np.float64) ** 2).sum(-1) + 1e-20)
            speech = power > np.percentile(power, 95) - 30 * np.log(10) / 10
            total += (raw[speech] - dec[speech]).astype(np.float64).sum(0)
            count += int(speech.sum())
        return (total / max(count, 1)).astype(np.float32)

    def static_latent(self, audios: list[np.ndarray], chunk_s: float = 60.0) -> np.ndarray:
        """The mean posterior mean of f over every (non-quiet) segment of all recordings, read
        ``chunk_s`` seconds at a time, so a long recording costs no more memory than a short one."""
        step = int(chunk_s * self.spec.sample_rate)
        total, count = None, 0
        for audio in audios:
            for i in range(0, max(len(audio), 1), step):
                segs = self.utterance_segments(audio[i : i + step])
                if len(segs) == 0:
                    continue
                f, _ = self.encode(segs)
                total = f.sum(axis=0) if total is None else total + f.sum(axis=0)
                count += len(f)
        if count == 0:
            raise DsaeError("no speech found: every recording is shorter than one segment or silent")
        return total / count


def map_levels(p: np.ndarray, from_q: np.ndarray, to_q: np.ndarray) -> np.ndarray:
    """Log-powers ``p`` mapped piecewise-linearly from quantiles ``from_q`` to ``to_q`` (both
    increasing), with slope 1 beyond the ends; a single pair is a constant offset."""
    if len(from_q) < 2:
        return p + (to_q[0] - from_q[0])
    return np.interp(p, from_q, to_q) + np.minimum(p - from_q[0], 0.0) + np.maximum(p - from_q[-1], 0.0)


def overlap_window(T: int) -> np.ndarray:
    """Positive weights that rise and fall over a segment, for averaging overlapping decodings."""
    return np.sin(np.pi * (np.arange(T) + 0.5) / T).astype(np.float32)


class ConvertedSpectrogram:
    """Converted log-magnitude frames of the source on demand: frames [a, b) decode exactly the
    segments that touch them, so any chunking gives the same values."""

    def __init__(
        self, codec: SpeechCodec, source: np.ndarray, f_target: np.ndarray, excitation=None, sharpen: float = 0.0,
        level: str = "decoded", filter_phase: str = "zero", gain: float = 1.0,
        level_map: tuple[np.ndarray, np.ndarray] | None = None, offset: np.ndarray | None = None,
    ):  # fmt: skip
        self.codec, self.source, self.f = codec, source, f_target
        self.offset = offset  # source-filter: added to the envelope's shape (log-magnitude per bin), not its power
        # the source is analysed at ``gain`` times its level, and the output returned to its own level
        self.gain = gain
        # level "decoded": each frame's log-power mapped from its envelope's by these quantiles
        # (SpeechCodec.level_map); None: the envelope's own power
        self.level_map = level_map
        self.filter_phase = filter_phase  # source-filter: the envelope as a "zero"- or "minimum"-phase filter
        self.excitation = excitation  # an Excitation: source-filter rendering; None: the envelope alone
        self.sharpen = sharpen  # the source-filter envelope's cepstral postfilter (excitation.lifter)
        self.level = level  # source-filter: each frame's energy from the "source" frame or the "decoded" envelope
        spec = codec.spec
        self.T = spec.seq_len
        self.n_frames = spec.n_frames(len(source))
        self.starts = A.segment_starts(self.n_frames, self.T, max(1, self.T // 2))
        self.window = overlap_window(self.T)
        self.picture = np.zeros((min(PICTURE_FRAMES, self.n_frames), spec.n_bins), np.float32)

    def _overlap_add(self, decoded: np.ndarray, use: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """Decoded segments (normalised) as log-magnitude frames [lo, hi), averaged where they overlap."""
        dec = self.codec.norm.invert(decoded)
        acc = np.zeros((hi - lo, self.codec.spec.n_bins), np.float32)
        wsum = np.zeros((hi - lo, 1), np.float32)
        for s, seg in zip(use, dec):
            acc[s - lo : s - lo + self.T] += self.window[:, None] * seg
            wsum[s - lo : s - lo + self.T, 0] += self.window
        return acc / wsum

    def envelope(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """The converted log-magnitude frames [a, b) (before any excitation) and the source's own."""
        spec, T = self.codec.spec, self.T
        use = self.starts[(self.starts < b) & (self.starts + T > a)]
        lo, hi = int(use[0]), int(use[-1]) + T
        mag = A.stft_magnitude(self.source, spec, lo, hi)
        raw = np.log(mag * np.float32(self.gain) + spec.log_floor) if self.gain != 1.0 else np.log(mag + spec.log_floor)
        frames = self.codec.norm.apply(raw)
        segs = np.stack([frames[s - lo : s - lo + T] for s in use])
        _, z = self.codec.encode(segs)
        raw = raw[a - lo : b - lo]
        log_mag = self._overlap_add(self.codec.decode(self.f, z), use, lo, hi)[a - lo : b - lo]
        return log_mag, raw

    def __call__(self, a: int, b: int) -> np.ndarray:
        spec = self.codec.spec
        log_mag, raw = self.envelope(a, b)
        if self.excitation is not None:
            from dsae_cli.io.excitation import lifters, minimum_phase

            # the plain envelope sets each frame's power, the postfiltered one its shape
            smooths = lifters(log_mag, (0.0, self.sharpen) if self.sharpen else (0.0,), sample_rate=spec.sample_rate)
            base, env = smooths[0], smooths[-1]
            if self.level == "source":
                energy = (A.to_magnitude(raw, spec).astype(np.float64) ** 2).sum(-1)
            else:
                energy = (A.to_magnitude(base, spec).astype(np.float64) ** 2).sum(-1)
                if self.level_map is not None:
                    energy = np.exp(map_levels(np.log(energy + 1e-20), *self.level_map))
            if self.offset is not None:
                env = env + self.offset
            phase = minimum_phase(env, spec.n_fft) if self.filter_phase == "minimum" else None
            smooth = A.to_magnitude(env, spec)
            out = self.excitation.shape(smooth, a, b, energy, phase)
            if self.gain != 1.0:
                out = out * np.float32(1.0 / self.gain)
            if a < len(self.picture):
                n = min(b, len(self.picture)) - a
                self.picture[a : a + n] = np.log(np.abs(out[:n]) + spec.log_floor)
            return out
        if self.gain != 1.0:
            log_mag = log_mag - np.float32(np.log(self.gain))
        if a < len(self.picture):
            self.picture[a : min(b, len(self.picture))] = log_mag[: len(self.picture) - a]
        return A.to_magnitude(log_mag, spec)


RENDERS = ("source-filter", "envelope")
PITCHES = ("target", "source")
LEVELS = ("source", "decoded")
FILTER_PHASES = ("minimum", "zero")
#: Griffin-Lim iterations by rendering: source-filter frames carry the excitation's phase, which needs none
DEFAULT_ITERATIONS = {"source-filter": 0, "envelope": 32}
DEFAULT_STRENGTH = 1.0  # how far f moves, in multiples of the way from the source's f to the target's


def source_filter_excitation(
    src: np.ndarray, tgt: list[np.ndarray], spec: A.SpectrogramConfig, pitch: str, seed: int | None, voiced_max_hz: float | None = None
):
    """The excitation for source-filter rendering: the source's F0 contour and voicing (one pass
    over the source, a small per-frame array), moved to the target's log-F0 mean and spread when
    ``pitch`` is "target"."""
    from dsae_cli.io.excitation import Excitation, PitchMap, pooled_log_stats, track_pitch

    src_pitch = track_pitch(src, spec)
    f0 = src_pitch.f0
    if pitch == "target":
        s_stats = src_pitch.log_stats()
        t_stats = pooled_log_stats([track_pitch(t, spec) for t in tgt])
        if s_stats is not None and t_stats is not None:
            f0 = PitchMap(s_stats, t_stats)(f0)
    return Excitation(f0, src_pitch.voicing, spec, seed=0 if seed is None else seed, voiced_max_hz=voiced_max_hz)


def convert_voice(
    model,
    source: str | Path,
    targets: list[str | Path],
    output: str | Path,
    iterations: int | None = None,
    seed: int | None = None,
    spectrogram: str | Path | None = None,
    device: str = "cpu",
    progress=None,
    chunk_frames: int = 3000,
    render: str = "source-filter",
    pitch: str = "target",
    sharpen: float = 0.6,
    level: str = "decoded",
    voiced_max_hz: float | None = None,
    filter_phase: str = "minimum",
    match_level: bool = False,
    keep_level: bool = True,
    match_spectrum: float = 1.0,
    strength: float = DEFAULT_STRENGTH,
) -> ConversionResult:
    """Say ``source``'s words in the voice of ``targets`` and write the result to ``output``.

    ``progress(frames_done, frames_total)`` is called after each rendered chunk. ``seed`` None
    renders from zero initial phase (deterministic); an integer seeds a random initial phase.

    ``render`` "source-filter" (default) multiplies the decoded envelope by a harmonic excitation at
    the converted F0 plus noise where the source is unvoiced, and takes the excitation's phase
    (``seed`` then seeds the noise); "envelope" renders the decoded envelope alone. ``iterations``
    of Griffin-Lim follow (default: 0 for source-filter, 32 for envelope). ``pitch`` "target" moves
    the source's F0 contour to the target's log-F0 mean and spread, "source" keeps it.

    Source-filter only: ``sharpen`` is the envelope's cepstral postfilter (:func:`excitation.lifter`);
    ``level`` "decoded" keeps each frame's energy from the decoded envelope, "source" from the source
    frame; ``voiced_max_hz`` stops the harmonics there, with noise above (None: no limit);
    ``filter_phase`` "minimum" applies the envelope as a minimum-phase filter (the excitation's pulses
    ring after each pulse, as through a vocal tract), "zero" as a zero-phase one.

    ``match_level`` analyses the source and each target recording at the level of the model's
    training speech (:meth:`SpeechCodec.level_gain`), so a quiet or loud recording is read like the
    speech the model learned from; the output is returned to the source's own level.
    ``keep_level`` (source-filter, level "decoded") renders each frame at its envelope's power mapped
    so that the frames' levels follow the source's (:meth:`SpeechCodec.level_map`): speech as loud as
    the source's and pauses as quiet; without it, speech comes out several dB quieter and pauses louder.
    ``match_spectrum`` (source-filter) adds that many times :meth:`SpeechCodec.spectrum_offset` of the
    target recordings to the converted envelope's shape: the part of the target voice's long-term
    spectrum that its own decoding misses (0: the decoded envelope alone).
    ``strength`` moves f that many times the way from the source's f to the target's: 1 decodes with
    the target's f as the model reads it (the default), more goes past it, away from the source voice:
    the voice moves further, the words and the naturalness suffer; a reconstruction (``targets`` the
    source itself) is the same at every strength.
    """
    import time

    from dsae_cli.io.files import check_output_path

    t0 = time.perf_counter()
    if not targets:
        raise DsaeError("give at least one --to recording of the target voice")
    if render not in RENDERS:
        raise DsaeError(f"--render must be one of {', '.join(RENDERS)}, not {render!r}")
    if not strength > 0:
        raise DsaeError(f"--strength must be above 0, not {strength:g}")
    if iterations is None:
        iterations = DEFAULT_ITERATIONS[render]
    if iterations < (0 if render == "source-filter" else 1):
        raise DsaeError("--iterations must be at least 1 with --render envelope (0 takes the excitation's phase as it is, source-filter only)")
    if pitch not in PITCHES:
        raise DsaeError(f"--pitch must be one of {', '.join(PITCHES)}, not {pitch!r}")
    if level not in LEVELS:
        raise DsaeError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if filter_phase not in FILTER_PHASES:
        raise DsaeError(f"filter_phase must be one of {', '.join(FILTER_PHASES)}, not {filter_phase!r}")
    inputs = (source, *targets)
    output = check_output_path(output, inputs=inputs, suffixes=tuple(A.WRITE_FORMATS))
    if spectrogram is not None:
        spectrogram = check_output_path(spectrogram, inputs=(*inputs, output), suffixes=(".png",))
    codec = SpeechCodec.of(model, device)
    spec = codec.spec
    src = A.read_audio(source, spec)
    tgt = [A.read_audio(t, spec) for t in targets]
    g_src = codec.level_gain(src) if match_level else 1.0
    tgt_read = [t * np.float32(codec.level_gain(t)) for t in tgt] if match_level else tgt  # as the model reads them
    f_target = codec.static_latent(tgt_read)
    f_voice = f_target
    if strength != 1.0:
        f_source = codec.static_latent([src * np.float32(g_src)])
        f_voice = (f_source + np.float32(strength) * (f_target - f_source)).astype(f_target.dtype)
    excitation = source_filter_excitation(src, tgt, spec, pitch, seed, voiced_max_hz) if render == "source-filter" else None
    level_map = codec.level_map(src * np.float32(g_src), f_voice) if keep_level and excitation is not None else None
    offset = None
    if match_spectrum and excitation is not None:
        offset = np.float32(match_spectrum) * codec.spectrum_offset(tgt_read, f_target)
    converted = ConvertedSpectrogram(codec, src, f_voice, excitation, sharpen, level, filter_phase, g_src, level_map, offset)
    gl_seed = seed if excitation is None else None  # the excitation's phase starts Griffin-Lim
    with A.audio_writer(output, spec.sample_rate) as write:
        for piece, done in render_chunks(len(src), converted, spec, iterations, gl_seed, chunk_frames):
            write(piece)
            if progress is not None:
                progress(done, converted.n_frames)
    if write.samples != len(src):  # a guard on the chunk arithmetic, not a user error
        raise RuntimeError(f"wrote {write.samples} samples for a source of {len(src)}")
    if spectrogram is not None:
        from dsae_cli.io import media

        n = len(converted.picture)
        panels = [A.log_spectrogram(src, spec, 0, n), A.log_spectrogram(tgt[0], spec, 0, PICTURE_FRAMES), converted.picture]
        names = [Path(source).name, Path(targets[0]).name, "converted"]
        labels = [f"source: {names[0]}", f"target: {names[1]}", "converted (source words, target voice)"]
        media.write_png(spectrogram, spectrogram_picture(panels, labels, spec))
    return ConversionResult(
        Path(output), len(src) / spec.sample_rate, spec.sample_rate, len(converted.starts),
        sum(len(t) for t in tgt) / spec.sample_rate, write.clipped, time.perf_counter() - t0,
    )  # fmt: skip
