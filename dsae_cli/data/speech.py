"""Speech corpora for training and evaluation: find the utterances and their speakers, cut them
into the model's segments.

Layouts (the speaker is read from the tree):
  LibriSpeech   SUBSET/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac  (speaker from the file name)
  TIMIT / NLTK  dr<R>-<s><ID>/*.wav, or TRAIN/DR<R>/<ID>/*.WAV            (speaker = the file's folder)
  VCTK          wav48/p<NNN>/*.wav or wav48_silence_trimmed/p<NNN>/*.flac  (speaker = the file's folder)
  any           <speaker>/*.wav (any depth; the folder holding the file names the speaker)

Sequences are the non-overlapping T-frame segments of each utterance's log-spectrogram (quiet
segments left out, see :func:`dsae_cli.io.audio.speech_segments`). Validation holds out whole
*utterances*; the per-bin normalisation is fitted on the training utterances only and stored in
the checkpoint so that conversion and evaluation see the same features.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dsae_cli.io.audio import AUDIO_SUFFIXES, Normalisation, SpectrogramConfig, read_audio, speech_segments
from dsae_cli.data.sequences import SequenceData, held_out_groups
from dsae_cli.train.batches import Batches
from dsae_cli.errors import DsaeError

LIBRISPEECH_NAME = re.compile(r"^(\d+)-(\d+)-(\d+)$")


@dataclass
class Utterance:
    path: Path
    speaker: str


def speaker_of(path: Path, root: Path) -> str | None:
    """The speaker of an audio file in a corpus tree, or None for a file directly in the root."""
    m = LIBRISPEECH_NAME.match(path.stem)
    if m:
        return m.group(1)
    rel = path.relative_to(root)
    return rel.parts[-2] if len(rel.parts) >= 2 else None


def scan_corpus(folder: str | Path) -> list[Utterance]:
    """Every audio file under ``folder`` (hidden files skipped) with its speaker, sorted by path."""
    root = Path(folder)
    if not root.exists():
        raise DsaeError(f"speech folder {root} not found; point --data at a corpus folder (speaker/*.wav, LibriSpeech, TIMIT, VCTK)")
    if not root.is_dir():
        raise DsaeError(f"{root} is a file; point --data at a folder of speakers' recordings (speaker/*.wav)")
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )  # fmt: skip
    if not files:
        raise DsaeError(f"{root} holds no audio files ({', '.join(AUDIO_SUFFIXES[:3])}, ...); point --data at a speech corpus")
    utts = [Utterance(p, s) for p in files if (s := speaker_of(p, root)) is not None]
    if not utts:
        raise DsaeError(
            f"{root} has its audio files directly inside, so their speakers are unknown; put each speaker's recordings "
            "in a folder named after the speaker (speaker/*.wav), or use a LibriSpeech, TIMIT or VCTK tree"
        )
    return utts


def load_speech_corpus(folder: str | Path, cfg: SpectrogramConfig, progress=None) -> tuple[SequenceData, list[str]]:
    """All segments of a corpus (log-spectrogram, not normalised) and the speaker names.

    Returns SequenceData with x float32 ``(N, T, n_bins)``, groups = speaker index,
    labels["utterance"] = utterance index. Unreadable, silent and too-short files are skipped and
    counted in ``source``; if nothing is left that is an error.
    """
    utts = scan_corpus(folder)
    speakers = sorted({u.speaker for u in utts})
    index = {s: i for i, s in enumerate(speakers)}
    xs, groups, utt_ids, skipped = [], [], [], []
    for k, u in enumerate(utts):
        try:
            segs = speech_segments(read_audio(u.path, cfg), cfg)
        except DsaeError as err:
            skipped.append(str(err))
            segs = None
        if segs is not None and len(segs):
            xs.append(segs)
            groups.append(np.full(len(segs), index[u.speaker], np.int64))
            utt_ids.append(np.full(len(segs), k, np.int64))
        if progress is not None:
            progress(k + 1, len(utts))
    if not xs:
        raise DsaeError(f"no usable recording in {folder} ({len(skipped)} skipped; first: {skipped[0] if skipped else 'none'})")
    used = sorted({int(g[0]) for g in groups})
    note = f", {len(skipped)} files skipped (first: {skipped[0]})" if skipped else ""
    source = f"speech:{folder} ({len(utt_ids)} utterances of {len(used)} speakers{note})"
    x = np.concatenate(xs)
    del xs
    return SequenceData(x, np.concatenate(groups), "speech", {"utterance": np.concatenate(utt_ids)}, source), speakers


def utterance_split(data: SequenceData, fraction: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx), holding out whole utterances (:func:`held_out_groups` of the utterance ids)."""
    is_val = np.isin(data.labels["utterance"], held_out_groups(data.labels["utterance"], fraction, seed))
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def held_out_utterances(folder: str | Path, cfg: SpectrogramConfig, fraction: float = 0.05, seed: int = 0) -> list[Utterance]:
    """The utterances of a training corpus that ``dsae train`` holds out for validation (with the same
    fraction and seed), in corpus order."""
    utts = scan_corpus(folder)
    data, _ = load_speech_corpus(folder, cfg)  # which utterances are usable decides the split, as in training
    return [utts[int(k)] for k in held_out_groups(data.labels["utterance"], fraction, seed)]


def parse_speech_spec(spec: str | None, modality: str | None = None) -> tuple[str | None, str | None]:
    """``speech:DIR`` -> (DIR, "speech"); other specs keep the given modality (None: decide later)."""
    if spec is not None and spec.startswith("speech:"):
        return spec[len("speech:") :], "speech"
    return spec, modality


def prepare_speech_training(
    folder: str | Path,
    model_config,
    val_fraction: float,
    seed: int,
    checkpoint_meta: dict | None = None,
    progress=None,
) -> tuple[SequenceData, SequenceData | None, dict, int]:
    """Training and validation segments (normalised), the checkpoint metadata that describes the
    features, and the number of validation utterances.

    A resumed run passes its checkpoint's metadata, so the normalisation stays the one the model
    was trained with; a new run fits it on the training utterances.
    """
    if checkpoint_meta and "spectrogram" in checkpoint_meta:
        cfg = SpectrogramConfig.from_dict(checkpoint_meta["spectrogram"])
        norm = Normalisation.from_dict(checkpoint_meta["normalisation"])
    else:
        cfg, norm = SpectrogramConfig.for_model(model_config), None
    if cfg.n_bins != model_config.n_bins or cfg.seq_len != model_config.seq_len:
        raise DsaeError(f"spectrogram settings give {cfg.n_bins} bins x {cfg.seq_len} frames, the model wants {model_config.n_bins} x {model_config.seq_len}")
    data, speakers = load_speech_corpus(folder, cfg, progress)
    train_idx, val_idx = utterance_split(data, val_fraction, seed)
    if norm is None:
        norm = Normalisation.fit(data.x[train_idx])
    data.x -= norm.mean  # in place: the corpus is the largest thing in memory
    data.x /= norm.std
    meta = {"spectrogram": cfg.to_dict(), "normalisation": norm.to_dict(), "speakers": len(speakers)}
    n_val_utts = len(np.unique(data.labels["utterance"][val_idx]))
    return data.subset(train_idx), (data.subset(val_idx) if len(val_idx) else None), meta, n_val_utts


def partner_table(groups: np.ndarray):
    """``partners(idx, rng)``: for each index, a random other index of the same group (itself when
    its group has one member)."""
    groups = np.asarray(groups)
    by_group = np.argsort(groups, kind="stable")
    _, start, count = np.unique(groups[by_group], return_index=True, return_counts=True)
    rank = np.empty(len(groups), np.int64)
    rank[by_group] = np.arange(len(groups))
    which = np.searchsorted(start, rank, side="right") - 1  # each index's group, as a row of start/count

    def partners(idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        g = which[idx]
        n = count[g]
        offset = 1 + (rng.random(len(idx)) * np.maximum(n - 1, 1)).astype(np.int64)  # 1 .. n-1: never itself
        local = (rank[idx] - start[g] + np.where(n > 1, offset, 0)) % n
        return by_group[start[g] + local]

    return partners


class SpeechBatches(Batches):
    """Training batches of speech segments: with ``paired``, half the batch from the order and half
    their partners (another segment of the same utterance, drawn per step, so resumes draw alike), as
    ``{"x", "paired": True, "groups"}``; with ``warp`` > 0, each sequence's frequency axis stretched by a
    factor drawn per step in [1/(1+warp), 1+warp] (a pair shares one: the same new voice)."""

    def __init__(self, data: SequenceData, norm: Normalisation, paired: bool = False, warp: float = 0.0, seed: int = 0):
        super().__init__(data)
        self.norm, self.paired, self.warp, self.seed = norm, paired, warp, seed
        self.per_index = 2 if paired else 1
        if paired:
            if "utterance" not in data.labels:
                raise DsaeError("model.pair_weight and model.contrast_weight need training data made of recordings (speech:DIR), whose segments they pair")
            self.partners = partner_table(data.labels["utterance"])
            self.recording = np.unique(np.asarray(data.labels["utterance"]), return_inverse=True)[1].reshape(-1)

    def make(self, idx: np.ndarray, step: int, rank: int, device: str) -> dict:
        import torch

        extra = {}
        if self.paired:  # [a_1..a_n, b_1..b_n]: b_k another segment of a_k's utterance
            rng = np.random.default_rng([self.seed, step, rank])
            idx = np.concatenate([idx, self.partners(idx, rng)])
            extra = {"paired": True, "groups": torch.from_numpy(self.recording[idx]).to(device)}
        x = self.data.x[idx]
        if self.warp > 0:
            x = self.warp_voices(x, step, rank)
        return {**self.plain(x, device), **extra}

    def warp_voices(self, x: np.ndarray, step: int, rank: int) -> np.ndarray:
        """Stretch on the raw log-spectrum (the stored features are normalised per bin)."""
        from dsae_cli.io import audio

        rng = np.random.default_rng([self.seed, step, rank, 1])
        n = len(x) // 2 if self.paired else len(x)
        alpha = np.exp(rng.uniform(-1.0, 1.0, n) * np.log1p(self.warp))
        if self.paired:
            alpha = np.concatenate([alpha, alpha])
        return self.norm.apply(audio.warp_frequency(self.norm.invert(x), alpha))
