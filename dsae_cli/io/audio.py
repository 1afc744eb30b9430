"""The speech front end: read and write audio, and turn it into the log-magnitude spectrogram frames
the DSAE models (the way back, Griffin-Lim, is :mod:`dsae_cli.io.render`).

Features follow the paper's speech set-up (Li & Mandt, 2018): log-magnitude STFT frames every
10 ms, about 200 frequency bins, segments of T = 20 frames (200 ms). The exact parameters live in
:class:`SpectrogramConfig`, which a speech checkpoint stores beside its weights together with the
per-bin :class:`Normalisation` fitted on its training data.

Memory: reading converts to mono at the model's rate block by block (a streaming resampler), so
only the mono audio itself is ever held whole. Spectrograms are computed on bounded chunks of
frames, and so is Griffin-Lim (:func:`dsae_cli.io.render.render_chunks`, which also draws the
spectrogram pictures), so a ten-minute file needs no more working memory than a ten-second one.

Every problem a user can fix (missing, empty, silent, corrupt or too-short audio) is raised as a
one-line :class:`~dsae_cli.errors.DsaeError`. librosa, soundfile and soxr are imported inside the
functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path, check_output_path
from dsae_cli.io.render import griffin_lim, render_chunks  # noqa: F401 - also reached here (tests/test_speech.py)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au", ".mp3", ".opus")
WRITE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
SILENCE_PEAK = 1e-4  # -80 dBFS: a file whose loudest sample is below this holds no speech


@dataclass(frozen=True)
class SpectrogramConfig:
    sample_rate: int = 16000  # Hz; every input is mixed to mono and resampled to this rate
    n_fft: int = 400  # FFT size; n_fft // 2 + 1 = 201 frequency bins up to 8 kHz
    win_length: int = 400  # Hann window, 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms between frames, as in the paper
    seq_len: int = 20  # T, frames per segment the model sees (200 ms)
    log_floor: float = 1e-3  # features are log(|STFT| + log_floor): finite for digital silence
    silence_db: float = 40.0  # segments this much below an utterance's loudest are left out of
    #   training and speaker embeddings (conversion keeps every segment, so timing is kept)

    def __post_init__(self) -> None:
        if self.sample_rate < 1000 or self.n_fft < 16 or not (0 < self.win_length <= self.n_fft):
            raise ValueError("spectrogram settings need sample_rate >= 1000, n_fft >= 16 and 0 < win_length <= n_fft")
        if not (0 < self.hop_length <= self.win_length) or self.seq_len < 1 or self.log_floor <= 0:
            raise ValueError("spectrogram settings need 0 < hop_length <= win_length, seq_len >= 1, log_floor > 0")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def segment_samples(self) -> int:
        """Samples in one segment of T frames: the shortest audio the model can work on."""
        return self.seq_len * self.hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples (librosa's ``center=True`` count)."""
        return 1 + n_samples // self.hop_length

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SpectrogramConfig":
        from models.config import config_from_dict

        return config_from_dict(cls, d, "spectrogram settings")

    @classmethod
    def for_model(cls, model_config) -> "SpectrogramConfig":
        """The default settings for a model config's n_bins and seq_len."""
        if model_config.n_bins == cls.n_fft // 2 + 1:
            return cls(seq_len=model_config.seq_len)
        n_fft = 2 * (model_config.n_bins - 1)
        return cls(n_fft=n_fft, win_length=n_fft, hop_length=max(1, min(cls.hop_length, n_fft)), seq_len=model_config.seq_len)


@dataclass
class Normalisation:
    """Per-bin mean and standard deviation of the training log-spectrogram frames."""

    mean: np.ndarray  # (n_bins,) float32
    std: np.ndarray  # (n_bins,) float32

    @classmethod
    def fit(cls, x: np.ndarray, min_std: float = 1e-2) -> "Normalisation":
        """Fit on frames ``(..., n_bins)``, summing in float64 over blocks (accurate for millions of
        frames, no float64 copy of them all). Values are rounded as :meth:`to_dict` stores them, so a
        model sees the same features in training and from its checkpoint."""
        flat = np.asarray(x).reshape(-1, np.asarray(x).shape[-1])
        if len(flat) == 0:
            raise DsaeError("no spectrogram frames to fit the normalisation on")
        mean = np.zeros(flat.shape[1])
        sq = np.zeros(flat.shape[1])
        for i in range(0, len(flat), 65536):  # bounded float64 temporaries
            block = flat[i : i + 65536].astype(np.float64)
            mean += block.sum(0)
            sq += (block**2).sum(0)
        mean /= len(flat)
        std = np.sqrt(np.maximum(sq / len(flat) - mean**2, 0.0))
        return cls.from_dict(cls(mean.astype(np.float32), np.maximum(std, min_std).astype(np.float32)).to_dict())

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def invert(self, x: np.ndarray) -> np.ndarray:
        return (x * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": [round(float(v), 6) for v in self.mean], "std": [round(float(v), 6) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalisation":
        mean, std = np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32)
        if mean.shape != std.shape or mean.ndim != 1 or not (np.isfinite(mean).all() and (std > 0).all()):
            raise ValueError("normalisation needs finite means and positive standard deviations of equal length")
        return cls(mean, std)


def front_end_of(model) -> tuple[SpectrogramConfig, Normalisation]:
    """The spectrogram settings and normalisation a speech checkpoint was trained with."""
    meta = getattr(model, "checkpoint_meta", None) or {}
    try:
        spec = SpectrogramConfig.from_dict(meta["spectrogram"])
        norm = Normalisation.from_dict(meta["normalisation"])
    except (KeyError, TypeError, ValueError) as err:
        raise DsaeError(
            f"this speech model has no usable spectrogram settings ({type(err).__name__}: {err}); "
            "use a model trained with `dsae train --data speech:DIR`"
        ) from None
    if spec.n_bins != model.config.n_bins or spec.seq_len != model.config.seq_len or len(norm.mean) != spec.n_bins:
        raise DsaeError("this speech model's spectrogram settings do not match its config; the checkpoint is damaged")
    return spec, norm


# --------------------------------------------------------------------------------------------
# reading and writing audio


def read_audio(path: str | Path, cfg: SpectrogramConfig | None = None) -> np.ndarray:
    """Read any file soundfile reads as mono float32 at ``cfg.sample_rate``.

    Channels are averaged and the rate converted block by block (soxr's streaming resampler), so a
    long 44.1 kHz stereo file never exists whole in memory. Audio shorter than one segment
    (``cfg.segment_samples``) is refused.
    """
    import soundfile as sf

    cfg = cfg or SpectrogramConfig()
    path = Path(path)
    if not path.exists():
        raise DsaeError(f"{path} not found; give a WAV or FLAC recording")
    if path.is_dir():
        raise DsaeError(f"{path} is a folder; give a WAV or FLAC recording")
    if path.stat().st_size == 0:
        raise DsaeError(f"{path} is empty (0 bytes); give a WAV or FLAC recording")
    _check_wav_complete(path)
    try:
        with sf.SoundFile(str(path)) as fh:
            audio, peak = _read_mono(fh, cfg.sample_rate, path)
    except DsaeError:
        raise
    except (RuntimeError, ValueError, OSError, EOFError) as err:  # soundfile's LibsndfileError is a RuntimeError
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DsaeError(f"{path} is not a readable audio file ({msg}); give a WAV or FLAC recording") from None
    if len(audio) == 0:
        raise DsaeError(f"{path} holds no audio samples; give a recording with speech")
    if peak < SILENCE_PEAK:
        raise DsaeError(f"{path} is silent (its loudest sample is below -80 dBFS); give a recording with speech")
    need = cfg.segment_samples
    if len(audio) < need:
        raise DsaeError(
            f"{path} lasts {len(audio) / cfg.sample_rate:.3f} s, shorter than one {need / cfg.sample_rate:.2f} s "
            "segment the model works on; give a longer recording"
        )
    return audio


#: data-chunk sizes that streaming writers leave as placeholders (the length was unknown when written)
_WAV_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF, 0x7FFFFFFF)


def wav_shortfall(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose data chunk is cut short (a copy or download that stopped), the
    (promised, present) byte counts of its audio data; None for complete files, placeholder sizes
    and anything that is not RIFF/WAVE (libsndfile reads a cut file without complaint, so this is
    checked here)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos = 12
            while pos + 8 <= size:
                fh.seek(pos)
                chunk = fh.read(8)
                cid, clen = chunk[:4], int.from_bytes(chunk[4:8], "little")
                if cid == b"data":
                    present = size - (pos + 8)
                    if clen in _WAV_PLACEHOLDER_SIZES or clen <= present:
                        return None
                    return clen, present
                pos += 8 + clen + (clen & 1)  # chunks are padded to even sizes
    except OSError:
        return None
    return None


def _check_wav_complete(path: Path) -> None:
    short = wav_shortfall(path)
    if short is not None:
        promised, present = short
        raise DsaeError(
            f"{path} is cut short: its header promises {promised:,} bytes of audio but the file holds "
            f"{present:,}; copy or export it again"
        )


def _read_mono(fh, rate: int, path: Path) -> tuple[np.ndarray, float]:
    """Mono float32 at ``rate`` from an open SoundFile, block by block, into one preallocated array;
    and the peak absolute sample (measured per block: no temporary as large as the audio)."""
    src_rate = int(fh.samplerate)
    resampler = None
    if src_rate != rate:
        import soxr

        resampler = soxr.ResampleStream(src_rate, rate, 1, dtype="float32", quality="HQ")
    known = fh.frames if fh.frames and fh.frames > 0 else 0
    peak = 0.0
    out = np.empty(int(math.ceil(known * rate / src_rate)) + 64 if known else 1 << 16, np.float32)
    n = 0

    def put(x: np.ndarray) -> None:
        nonlocal out, n
        if n + len(x) > len(out):  # unknown or wrong frame count: grow geometrically
            grown = np.empty(max(2 * len(out), n + len(x)), np.float32)
            grown[:n] = out[:n]
            out = grown
        out[n : n + len(x)] = x
        n += len(x)

    for block in fh.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
        if not np.isfinite(block).all():
            raise DsaeError(f"{path} holds non-finite samples (NaN or infinity); the file is damaged")
        mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        peak = max(peak, float(np.abs(mono).max(initial=0.0)))
        put(resampler.resample_chunk(np.ascontiguousarray(mono), last=False) if resampler else mono)
    if resampler is not None:
        put(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    return out[:n], peak


def output_format(path: Path) -> str:
    fmt = WRITE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise DsaeError(f"output {path} must end in {' or '.join(WRITE_FORMATS)}")
    return fmt


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio as 16-bit WAV/FLAC, atomically (samples beyond +-1 are clipped)."""
    with audio_writer(path, sample_rate) as write:
        write(audio)


class _ChunkWriter:
    """Callable that appends float chunks to an open SoundFile, counting clipped samples."""

    def __init__(self, fh):
        self.fh, self.samples, self.clipped = fh, 0, 0

    def __call__(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, np.float32)
        self.clipped += int((np.abs(chunk) > 1.0).sum())
        self.fh.write(np.clip(chunk, -1.0, 1.0))
        self.samples += len(chunk)


@contextmanager
def audio_writer(path: str | Path, sample_rate: int):
    """``with audio_writer(path, rate) as write: write(chunk) ...``: stream chunks into a 16-bit
    WAV/FLAC that appears under its name only when complete (an existing file survives a failure).
    ``write.samples`` and ``write.clipped`` count what was written and what was clipped to +-1."""
    import soundfile as sf

    path = check_output_path(path)
    fmt = output_format(path)
    with atomic_path(path) as tmp:
        # the temporary name ends in .tmp.wav / .tmp.flac; name the format anyway
        with sf.SoundFile(str(tmp), "w", samplerate=int(sample_rate), channels=1, subtype="PCM_16", format=fmt) as fh:
            yield _ChunkWriter(fh)


# --------------------------------------------------------------------------------------------
# features


def stft_magnitude(audio: np.ndarray, cfg: SpectrogramConfig, start: int = 0, stop: int | None = None) -> np.ndarray:
    """|STFT| frames ``[start, stop)`` of a centred STFT of the whole ``audio``: float32 ``(frames, n_bins)``.

    Frame j is centred on sample ``j * hop`` (zeros beyond the ends), exactly as librosa's
    ``stft(center=True, pad_mode="constant")`` of the whole signal, so chunks computed
    separately agree with the whole.
    """
    import librosa

    total = cfg.n_frames(len(audio))
    stop = total if stop is None else min(stop, total)
    if stop <= start:
        return np.zeros((0, cfg.n_bins), np.float32)
    half = cfg.n_fft // 2
    lo, hi = start * cfg.hop_length - half, (stop - 1) * cfg.hop_length - half + cfg.n_fft
    seg = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(audio))
    if b > a:
        seg[a - lo : b - lo] = audio[a:b]
    spec = librosa.stft(seg, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length, window="hann", center=False)
    return np.abs(spec).T.astype(np.float32)


def log_spectrogram(audio: np.ndarray, cfg: SpectrogramConfig, start: int = 0, stop: int | None = None) -> np.ndarray:
    """log(|STFT| + floor) frames ``[start, stop)``: float32 ``(frames, n_bins)``."""
    return np.log(stft_magnitude(audio, cfg, start, stop) + cfg.log_floor)


def to_magnitude(log_spec: np.ndarray, cfg: SpectrogramConfig) -> np.ndarray:
    """The inverse of the log: magnitudes, never negative."""
    return np.maximum(np.exp(log_spec) - cfg.log_floor, 0.0).astype(np.float32)


def warp_frequency(frames: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Stretch each sequence's frequency axis by its factor: ``out[n, :, k] = frames[n, :, k / alpha[n]]``.

    ``frames`` (N, T, n_bins) log magnitudes; linear interpolation between bins, the top bin repeated
    beyond the band. alpha > 1 moves formants and harmonics up (a shorter vocal tract), < 1 down: the
    vocal tract length perturbation of Jaitly & Hinton (2013), which makes a new voice of a recording.
    """
    n_bins = frames.shape[-1]
    pos = np.minimum(np.arange(n_bins, dtype=np.float64)[None, :] / np.asarray(alpha, np.float64)[:, None], n_bins - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n_bins - 1)
    w = (pos - lo).astype(np.float32)[:, None, :]
    low = np.take_along_axis(frames, lo[:, None, :], axis=-1)
    high = np.take_along_axis(frames, hi[:, None, :], axis=-1)
    return (low + w * (high - low)).astype(np.float32)


def segment_starts(n_frames: int, seq_len: int, hop: int) -> np.ndarray:
    """Starts of T-frame segments every ``hop`` frames, the last aligned to the end so every frame is covered."""
    if n_frames < seq_len:
        return np.zeros(0, np.int64)
    starts = list(range(0, n_frames - seq_len + 1, hop))
    if starts[-1] != n_frames - seq_len:
        starts.append(n_frames - seq_len)
    return np.asarray(starts, np.int64)


def speech_segments(audio: np.ndarray, cfg: SpectrogramConfig, chunk_frames: int = 6000) -> np.ndarray:
    """Non-overlapping T-frame log-spectrogram segments of an utterance, quiet ones left out.

    Returns float32 ``(N, T, n_bins)`` (not normalised). A segment is kept when its mean power is
    within ``cfg.silence_db`` of the utterance's loudest segment; the tail shorter than T is dropped.
    """
    T = cfg.seq_len
    n = cfg.n_frames(len(audio)) // T
    if n == 0:
        return np.zeros((0, T, cfg.n_bins), np.float32)
    out = np.empty((n, T, cfg.n_bins), np.float32)
    power = np.empty(n)
    step = max(T, chunk_frames // T * T)
    for a in range(0, n * T, step):  # bounded chunks: never the whole utterance's complex STFT
        b = min(a + step, n * T)
        mag = stft_magnitude(audio, cfg, a, b)
        out[a // T : b // T] = np.log(mag + cfg.log_floor).reshape(-1, T, cfg.n_bins)
        power[a // T : b // T] = (mag.astype(np.float64) ** 2).reshape(-1, T, cfg.n_bins).mean(axis=(1, 2))
    db = 10 * np.log10(power + 1e-20)
    return out[db >= db.max() - cfg.silence_db]
