"""Source-filter rendering for voice conversion: pitch tracking, pitch moving, and the excitation
(harmonics at the converted F0, noise where the source is unvoiced) that multiplies the smooth
spectral envelope the speech DSAE decodes.

- :func:`track_pitch` is a YIN tracker (de Cheveigne & Kawahara, 2002) vectorised over frames, its
  candidates joined by a Viterbi path as in pYIN: F0 and voicing per frame. Frames are those of the
  model's spectrogram (centred on ``j * hop``), computed in bounded blocks, so a long file costs one
  cheap pass and small per-frame arrays.
- :class:`PitchMap` moves log-F0 to a target's mean and spread (robust log-F0 statistics of voiced
  frames: median and median absolute deviation).
- :class:`Excitation` synthesises the excitation signal of any frame range from global sample
  positions (phase accumulated over the whole file, noise seeded per block), so chunks rendered
  separately agree with the whole; its STFT with the model's window and hop gives harmonic peaks with
  the analysis window's main-lobe shape. :meth:`Excitation.shape` multiplies the envelope by it,
  keeping the envelope's energy per frame, and returns complex frames whose angle seeds Griffin-Lim.

numpy and scipy only (librosa for the STFT), imported where needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsae_cli.io.audio import SpectrogramConfig

F0_MIN, F0_MAX = 60.0, 450.0  # Hz, the tracker's search range
VOICED = 0.5  # voicing probability above which a frame counts as voiced


@dataclass
class Pitch:
    """Per-frame pitch of a recording: F0 in Hz (unvoiced frames filled in from their voiced
    neighbours, so the contour is continuous), voicing probability in [0, 1]."""

    f0: np.ndarray  # (frames,) float64
    voicing: np.ndarray  # (frames,) float32

    @property
    def voiced(self) -> np.ndarray:
        return self.voicing > VOICED

    def log_stats(self) -> tuple[float, float] | None:
        """Centre and spread of log F0 over voiced frames (None: too few voiced frames); see
        :func:`pooled_log_stats`."""
        return pooled_log_stats([self])


def _frames(audio: np.ndarray, centres: np.ndarray, length: int) -> np.ndarray:
    """(len(centres), length) frames starting ``length // 2`` before each centre, zeros beyond the ends."""
    lo = int(centres[0]) - length // 2
    hi = int(centres[-1]) - length // 2 + length
    seg = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(audio))
    if b > a:
        seg[a - lo : b - lo] = audio[a:b]
    idx = (centres - centres[0])[:, None] + np.arange(length)[None, :]
    return seg[idx]


CANDIDATES = 5  # F0 candidates per frame: the deepest dips of YIN's difference function


def _yin_candidates(frames: np.ndarray, sr: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 candidates of frames ``(n, window + tau_max)`` and their aperiodicity, ``(n, CANDIDATES)``
    each: the deepest local minima of YIN's cumulative-mean-normalised difference, refined by a
    parabola; missing candidates have aperiodicity inf."""
    import scipy.fft

    tau_min, tau_max = int(sr / F0_MAX), int(np.ceil(sr / F0_MIN))
    n, length = frames.shape
    nfft = scipy.fft.next_fast_len(length, real=True)  # j + t < length: the circular correlation does not wrap
    x = frames.astype(np.float64)
    spec_a = scipy.fft.rfft(x[:, :window], nfft)
    spec_b = scipy.fft.rfft(x, nfft)
    r = scipy.fft.irfft(np.conj(spec_a) * spec_b, nfft)[:, : tau_max + 1]  # r[t] = sum_j x[j] x[j + t], j < window
    sq = np.concatenate([np.zeros((n, 1)), np.cumsum(x**2, axis=1)], axis=1)
    taus = np.arange(tau_max + 1)
    e_tau = sq[:, taus + window] - sq[:, taus]
    d = np.maximum(sq[:, [window]] + e_tau - 2 * r, 0.0)
    d[:, 0] = 0.0
    cum = np.cumsum(d[:, 1:], axis=1)
    cmnd = np.ones_like(d)
    cmnd[:, 1:] = d[:, 1:] * taus[1:] / np.maximum(cum, 1e-12)
    c = cmnd[:, tau_min : tau_max + 1]
    local_min = np.zeros_like(c, bool)
    local_min[:, 1:-1] = (c[:, 1:-1] <= c[:, :-2]) & (c[:, 1:-1] < c[:, 2:])
    dips = np.where(local_min, c, np.inf)
    order = np.argsort(dips, axis=1)[:, :CANDIDATES]
    rows = np.arange(n)[:, None]
    found = np.isfinite(dips[rows, order])
    i = np.clip(order, 1, c.shape[1] - 2)
    a, b, cc = c[rows, i - 1], c[rows, i], c[rows, i + 1]
    den = a - 2 * b + cc
    curved = np.abs(den) > 1e-12
    shift = np.clip(np.where(curved, 0.5 * (a - cc) / np.where(curved, den, 1.0), 0.0), -1, 1)
    depth = np.clip(np.where(curved, b - 0.25 * (a - cc) * shift, b), 0.0, 1.0)
    return sr / (tau_min + i + shift), np.where(found, depth, np.inf)


def track_pitch(
    audio: np.ndarray, cfg: SpectrogramConfig, block: int = 500, unvoiced: float = 0.6, jump: float = 2.0, switch: float = 0.5
) -> Pitch:  # fmt: skip
    """Pitch of every spectrogram frame of ``audio`` (``cfg.n_frames(len(audio))`` frames), as
    probabilistic YIN (pYIN, Mauch & Dixon 2014) does it, with costs in place of probabilities.

    Each frame offers F0 candidates (:func:`_yin_candidates`, over 25 ms centred on the frame) at a
    cost of their aperiodicity, and "unvoiced" at a cost of ``unvoiced`` (0 where the frame is more
    than 50 dB below the recording's loud frames, where no candidate is allowed). The cheapest path
    through the frames (Viterbi) pays ``jump`` per octave between consecutive voiced frames and
    ``switch`` for each change between voiced and unvoiced: so F0 follows a continuous contour
    through weakly periodic frames instead of jumping to an octave or a noise dip, and short gaps
    are bridged. F0 is interpolated across unvoiced frames; voicing is 1 or 0.
    """
    sr, hop = cfg.sample_rate, cfg.hop_length
    window = int(round(0.025 * sr))
    tau_max = int(np.ceil(sr / F0_MIN))
    length = window + tau_max + 1
    total = cfg.n_frames(len(audio))
    freq = np.empty((total, CANDIDATES))
    cost = np.empty((total, CANDIDATES))
    level = np.empty(total)
    for a in range(0, total, block):
        centres = np.arange(a, min(a + block, total)) * hop
        # the stretch compared with its shifted self is centred on the frame for a middle lag
        fr = _frames(audio, centres + (length // 2 - (window + tau_max // 2) // 2), length)
        freq[a : a + len(centres)], cost[a : a + len(centres)] = _yin_candidates(fr, sr, window)
        mid = _frames(audio, centres, window).astype(np.float64)
        level[a : a + len(centres)] = 10 * np.log10((mid**2).mean(axis=1) + 1e-12)
    gate = np.clip((level - (np.percentile(level, 95) - 50.0)) / 10.0, 0.0, 1.0)
    emit = np.concatenate([np.where(gate[:, None] > 0, cost + (1 - gate[:, None]), np.inf), (unvoiced * gate)[:, None]], axis=1)
    octave = np.log2(np.where(np.isfinite(cost), freq, 1.0))
    K = CANDIDATES
    step = np.zeros((K + 1, K + 1))
    step[:K, K] = step[K, :K] = switch
    back = np.zeros((total, K + 1), np.int32)
    acc = emit[0].copy()
    states = np.arange(K + 1)
    for t in range(1, total):
        step[:K, :K] = jump * np.abs(octave[t - 1][:, None] - octave[t][None, :])
        via = acc[:, None] + step
        back[t] = np.argmin(via, axis=0)
        acc = via[back[t], states] + emit[t]
    path = np.empty(total, np.int64)
    path[-1] = int(np.argmin(acc))
    for t in range(total - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    voiced = path < K
    if voiced.sum() >= 2:
        idx = np.flatnonzero(voiced)
        f0 = np.interp(np.arange(total), idx, freq[idx, path[idx]])
    else:
        f0 = np.full(total, 120.0)
    return Pitch(f0, voiced.astype(np.float32))


def pooled_log_stats(pitches: list[Pitch]) -> tuple[float, float] | None:
    """Centre and spread of log F0 over the voiced frames of several recordings: robust estimates of
    the mean and standard deviation (the median, and 1.4826 x the median absolute deviation), so a
    few frames of a wrong octave do not move them. None with fewer than 5 voiced frames."""
    lf = np.concatenate([np.log(p.f0[p.voiced]) for p in pitches])
    if len(lf) < 5:
        return None
    centre = float(np.median(lf))
    return centre, float(max(1.4826 * np.median(np.abs(lf - centre)), 0.02))


@dataclass
class PitchMap:
    """log F0 -> target mean + (log F0 - source mean) * (target spread / source spread)."""

    source: tuple[float, float]
    target: tuple[float, float]

    def __call__(self, f0: np.ndarray) -> np.ndarray:
        (ms, ss), (mt, st) = self.source, self.target
        ratio = float(np.clip(st / ss, 0.25, 4.0))
        return np.clip(np.exp(mt + (np.log(f0) - ms) * ratio), 40.0, 1000.0)


def lifter(log_mag: np.ndarray, cutoff_s: float = 0.0025, sample_rate: int = 16000, sharpen: float = 0.0) -> np.ndarray:
    """The smooth part of log-magnitude frames ``(frames, n_bins)``: cepstral coefficients up to
    ``cutoff_s`` seconds of quefrency kept (a raised-cosine taper over the last quarter), the rest
    dropped, so harmonic ripple of any F0 below ``1 / cutoff_s`` goes.

    ``sharpen`` > 0 is a cepstral postfilter (as in HMM and neural vocoders' formant emphasis): the
    coefficients from the second on, the envelope's peaks and valleys, are scaled by ``1 + sharpen``,
    undoing part of the smoothing a decoder trained on the mean adds; level and tilt are kept."""
    return lifters(log_mag, (sharpen,), cutoff_s, sample_rate)[0]


def lifters(log_mag: np.ndarray, sharpens: tuple[float, ...], cutoff_s: float = 0.0025, sample_rate: int = 16000) -> list[np.ndarray]:
    """:func:`lifter` at each of ``sharpens``, from one cepstrum."""
    import scipy.fft

    n = log_mag.shape[-1]
    cep = scipy.fft.dct(log_mag.astype(np.float64), type=2, axis=-1, norm="ortho")
    q = np.arange(n)  # DCT index q = quefrency in samples
    cut = cutoff_s * sample_rate
    taper = np.clip((cut - q) / (0.25 * cut), 0.0, 1.0)
    base = 0.5 - 0.5 * np.cos(np.pi * taper)
    out = []
    for sharpen in sharpens:
        w = base.copy()
        w[2:] *= 1.0 + sharpen
        out.append(scipy.fft.idct(cep * w, type=2, axis=-1, norm="ortho").astype(np.float32))
    return out


def minimum_phase(log_mag: np.ndarray, n_fft: int) -> np.ndarray:
    """The phase (radians, ``(frames, n_fft // 2 + 1)``) of the minimum-phase filter whose
    log-magnitude is ``log_mag``: the real cepstrum folded onto positive quefrencies (as in
    cepstral and STRAIGHT / WORLD vocoders), so a pulse through the filter rings after it, as through
    a vocal tract, instead of spreading symmetrically around it."""
    cep = np.fft.irfft(log_mag.astype(np.float64), n=n_fft, axis=-1)
    half = n_fft // 2
    fold = np.zeros_like(cep)
    fold[..., 0] = cep[..., 0]
    fold[..., 1:half] = 2 * cep[..., 1:half]
    if n_fft % 2 == 0:
        fold[..., half] = cep[..., half]
    else:
        fold[..., half] = 2 * cep[..., half]
    return np.fft.rfft(fold, axis=-1).imag


class Excitation:
    """The excitation of a recording at a per-frame F0 and voicing, as STFT frames on demand.

    ``f0`` and ``voicing`` are per spectrogram frame (frame j centred on sample ``j * hop``); F0 is
    linear between frame centres and constant beyond the ends. The harmonic part is a band-limited
    pulse train (all harmonics below 0.475 x the sample rate, equal amplitude, unit power); the noise
    part unit-variance white noise; each sample mixes them as sqrt(v) and sqrt(1 - v), v the voicing
    probability up to ``max_voicing`` (1 by default: noise in voiced frames lowered DNSMOS in our checks).

    ``voiced_max_hz`` (None: no limit) is a maximum voiced frequency, as in harmonic-plus-noise vocoders:
    the harmonics stop there and, in voiced frames, noise of the same level takes the band above it.
    """

    NOISE_BLOCK = 4096

    def __init__(
        self, f0: np.ndarray, voicing: np.ndarray, cfg: SpectrogramConfig, seed: int = 0, max_voicing: float = 1.0,
        voiced_max_hz: float | None = None,
    ):  # fmt: skip
        self.cfg, self.seed = cfg, seed
        self.voiced_max_hz = voiced_max_hz
        hop, sr = cfg.hop_length, cfg.sample_rate
        self.pad = cfg.n_fft // hop + 2  # frames of constant extension beyond each end
        f = np.concatenate([np.full(self.pad, f0[0]), np.asarray(f0, np.float64), np.full(self.pad, f0[-1])])
        v = np.concatenate([np.full(self.pad, voicing[0]), np.asarray(voicing, np.float64), np.full(self.pad, voicing[-1])])
        self.f, self.v = f, np.clip(v, 0.0, max_voicing)
        per_hop = hop * f[:-1] + (f[1:] - f[:-1]) * (hop - 1) / 2  # sum of the per-sample F0 over each hop
        self.phase = np.concatenate([[0.0], np.cumsum(per_hop)]) * (2 * np.pi / sr)  # at each frame centre

    def signal(self, start: int, stop: int, upper: bool = False) -> np.ndarray:
        """Excitation samples [start, stop) (global sample positions, may reach beyond the ends). With
        ``upper``, the noise that takes voiced frames' band above ``voiced_max_hz`` instead (full band:
        :meth:`frames` keeps its upper band)."""
        out = np.empty(stop - start, np.float32)
        for a in range(start, stop, 1 << 16):  # bounded float64 temporaries
            b = min(a + (1 << 16), stop)
            harmonic, noise, voicing = self._parts(a, b)
            if upper:
                out[a - start : b - start] = np.sqrt(voicing) * self._noise(a, b, stream=1)
            else:
                out[a - start : b - start] = np.sqrt(voicing) * harmonic + np.sqrt(1 - voicing) * noise
        return out

    def _parts(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Harmonic (unit power over the full band; only the harmonics below ``voiced_max_hz`` kept)
        and unit-power noise samples [start, stop), and the voicing at each sample."""
        cfg = self.cfg
        hop, sr = cfg.hop_length, cfg.sample_rate
        n = np.arange(start, stop)
        j = np.clip(n // hop + self.pad, 0, len(self.f) - 2)  # extended frame index left of each sample
        d = (n - (j - self.pad) * hop).astype(np.float64)
        f0, f1 = self.f[j], self.f[j + 1]
        phase = self.phase[j] + (2 * np.pi / sr) * (d * f0 + (f1 - f0) * d * (d - 1) / (2 * hop))
        phase = np.mod(phase, 2 * np.pi)
        f_now = f0 + (f1 - f0) * d / hop
        K_full = np.maximum(np.floor(0.475 * sr / f_now), 1.0)
        K = K_full if self.voiced_max_hz is None else np.clip(np.floor(self.voiced_max_hz / f_now), 1.0, K_full)
        s = np.sin(0.5 * phase)
        safe = np.abs(s) > 1e-9
        comb = np.where(safe, np.sin((K + 0.5) * phase) / (2 * np.where(safe, s, 1.0)) - 0.5, K)
        harmonic = comb / np.sqrt(K_full / 2)
        voicing = self.v[j] + (self.v[j + 1] - self.v[j]) * d / hop
        return harmonic, self._noise(start, stop), voicing

    def _noise(self, start: int, stop: int, stream: int = 0) -> np.ndarray:
        B = self.NOISE_BLOCK
        first, last = start // B, (stop - 1) // B
        parts = [np.random.default_rng([self.seed, b + (1 << 30), stream]).standard_normal(B) for b in range(first, last + 1)]
        return np.concatenate(parts)[start - first * B : stop - first * B]

    def frames(self, a: int, b: int) -> np.ndarray:
        """Complex STFT frames [a, b) of the excitation, ``(b - a, n_bins)``, with the model's window and hop."""
        import librosa

        cfg = self.cfg
        half = cfg.n_fft // 2
        lo, hi = a * cfg.hop_length - half, (b - 1) * cfg.hop_length - half + cfg.n_fft
        kw = dict(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann", center=False)
        spec = librosa.stft(self.signal(lo, hi), **kw)
        if self.voiced_max_hz is not None:
            freqs = np.arange(spec.shape[0]) * cfg.sample_rate / cfg.n_fft
            ramp = np.clip((freqs - self.voiced_max_hz) / 250.0 + 0.5, 0.0, 1.0)  # a 250 Hz crossover
            spec = spec + ramp[:, None] * librosa.stft(self.signal(lo, hi, upper=True), **kw)
        return spec.T

    def shape(
        self, envelope: np.ndarray, a: int, b: int, energy: np.ndarray | None = None, phase: np.ndarray | None = None
    ) -> np.ndarray:  # fmt: skip
        """Complex frames [a, b): magnitude = ``envelope`` (magnitudes ``(b - a, n_bins)``) times the
        excitation's magnitude, scaled so each frame keeps the envelope's energy (or ``energy``, per
        frame, where given); angle = the excitation's, plus the filter's ``phase`` where given."""
        ex = self.frames(a, b)
        mag = np.abs(ex)
        shaped = envelope * mag
        if energy is None:
            energy = (envelope.astype(np.float64) ** 2).sum(-1)
        gain = np.sqrt(energy / np.maximum((shaped.astype(np.float64) ** 2).sum(-1), 1e-20))
        out = ex * (envelope * gain[:, None])
        if phase is not None:
            out = out * np.exp(1j * phase)
        return out.astype(np.complex64)
