"""Speaker verification with a speech DSAE, as the paper evaluates its latents (Li & Mandt, 2018).

Each utterance of a corpus of unseen speakers gets embeddings: mu_f, the mean over its segments of
the posterior mean of f, and mu_z, the mean over segments and time of the posterior means of z_t.
Every pair of utterances is a trial (target when both have the same speaker); its score is the
cosine similarity of the two embeddings after each dimension is standardised over the evaluated
utterances (mean 0, variance 1; no labels used, the same for every method). The equal error rate
(EER) of mu_f should be low (f carries the speaker) and that of mu_z high (z should not).

Plain baselines on the same trials, scored the same way: the mean normalised log-spectrum of the
utterance (the model's own input features) and the mean MFCC vector (librosa, 20 coefficients
without c0). ``eer_baseline`` is the better (lower) of the two.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    """EER of scores (higher = more likely the same speaker) for labels (1 target, 0 non-target).

    The ROC is traced over every threshold between distinct scores (tied scores move the curve
    along a straight segment, i.e. they are accepted together), from (FAR 0, FRR 1) to (FAR 1,
    FRR 0); the EER is where that polyline crosses FAR = FRR, interpolated linearly.
    """
    scores = np.asarray(scores, np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.shape != labels.shape:
        raise ValueError("scores and labels differ in length")
    n_t, n_n = int(labels.sum()), int((~labels).sum())
    if n_t == 0 or n_n == 0:
        raise ValueError("the EER needs both target and non-target trials")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    # accept the top k scores; only cut between distinct scores (ties go together)
    last_of_value = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.r_[0, np.cumsum(y)[last_of_value]]
    fp = np.r_[0, np.cumsum(~y)[last_of_value]]
    far = fp / n_n
    frr = 1.0 - tp / n_t
    d = frr - far  # starts at 1, ends at -1, never increases
    k = int(np.flatnonzero(d <= 0)[0])
    if d[k] == 0:
        return float(far[k])
    # cross between point k-1 (d > 0) and k (d < 0): solve along the segment
    t = d[k - 1] / (d[k - 1] - d[k])
    return float(far[k - 1] + t * (far[k] - far[k - 1]))


def trial_scores(embeddings: np.ndarray, speakers: np.ndarray, standardise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cosine scores and target labels of every pair of utterances (i < j), after standardising
    each dimension over the utterances (``standardise``)."""
    e = np.asarray(embeddings, np.float64)
    if standardise:
        e = (e - e.mean(axis=0)) / np.maximum(e.std(axis=0), 1e-12)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    i, j = np.triu_indices(len(e), k=1)
    scores = np.einsum("nd,nd->n", e[i], e[j])
    speakers = np.asarray(speakers)
    return scores, (speakers[i] == speakers[j]).astype(np.int8)


def mfcc_mean(audio: np.ndarray, spec) -> np.ndarray:
    """Mean of 20 MFCCs without c0 over an utterance (librosa, 40 mel bands, the model's STFT grid)."""
    import librosa

    m = librosa.feature.mfcc(
        y=audio, sr=spec.sample_rate, n_mfcc=21, n_fft=spec.n_fft, hop_length=spec.hop_length,
        win_length=spec.win_length, n_mels=40,
    )  # fmt: skip
    return m[1:].mean(axis=1)


def evaluate_speaker_verification(model, folder: str | Path, device: str = "cpu", progress=None, split: str = "test") -> dict:
    """EERs of mu_f, mu_z and the plain baselines over every pair of utterances in ``folder``.

    ``split="test"``: ``folder`` holds speakers unseen in training. ``split="val"``: ``folder`` is the
    model's training corpus, and only the utterances that training held out are scored, each cut
    into two halves (the corpus may have one utterance per speaker). ``progress(done, total)`` is
    called after each utterance. Unreadable, silent and too-short files are skipped and counted.
    """
    from dsae_cli.data.speech import held_out_utterances, scan_corpus
    from dsae_cli.io.audio import read_audio
    from dsae_cli.voice import SpeechCodec

    if split not in ("val", "test"):
        raise DsaeError(f"unknown --split {split!r}; use val or test")
    codec = SpeechCodec.of(model, device)
    utts = held_out_utterances(folder, codec.spec) if split == "val" else scan_corpus(folder)
    mu_f, mu_z, logspec, mfcc, speakers, skipped = [], [], [], [], [], []
    for k, u in enumerate(utts):
        try:
            audio = read_audio(u.path, codec.spec)
        except DsaeError as err:
            skipped.append(str(err))
            audio = None
        pieces = [audio] if split == "test" or audio is None else [audio[: len(audio) // 2], audio[len(audio) // 2 :]]
        for piece in pieces if audio is not None else []:
            segs = codec.utterance_segments(piece)
            f, z = codec.encode(segs)
            mu_f.append(f.mean(axis=0))
            mu_z.append(z.mean(axis=(0, 1)))
            logspec.append(segs.mean(axis=(0, 1)))
            mfcc.append(mfcc_mean(piece, codec.spec))
            speakers.append(u.speaker)
        if progress is not None:
            progress(k + 1, len(utts))
    speakers = np.asarray(speakers)
    n_speakers = len(np.unique(speakers))
    if n_speakers < 2 or len(speakers) < 3:
        raise DsaeError(f"{folder} needs recordings of at least two speakers (found {n_speakers} usable speakers, {len(speakers)} utterances)")
    counts = np.unique(speakers, return_counts=True)[1]
    if counts.max() < 2:
        raise DsaeError(f"{folder} has one utterance per speaker, so there are no same-speaker trials; give each speaker two or more")
    eers = {}
    for name, emb in (("f", mu_f), ("z", mu_z), ("logspec", logspec), ("mfcc", mfcc)):
        scores, labels = trial_scores(np.asarray(emb), speakers)
        eers[name] = equal_error_rate(scores, labels)
    best = "mfcc" if eers["mfcc"] < eers["logspec"] else "logspec"
    return {
        "data": str(folder),
        "split": split,
        "model_id": getattr(model, "model_id", None),
        "eer_f": round(eers["f"], 4),
        "eer_z": round(eers["z"], 4),
        "eer_baseline": round(eers[best], 4),
        "baseline": {"logspec": "mean normalised log-spectrum", "mfcc": "mean MFCC"}[best],
        "eer_logspec_mean": round(eers["logspec"], 4),
        "eer_mfcc_mean": round(eers["mfcc"], 4),
        "n_speakers": int(n_speakers),
        "n_utterances": int(len(speakers)),
        "n_trials": int(len(labels)),
        "n_target_trials": int(labels.sum()),
        "skipped": len(skipped),
        "scoring": "cosine of embeddings standardised per dimension over the evaluated utterances",
    }
