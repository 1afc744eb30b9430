"""p(f) fitted to the aggregate posterior of a trained model's training sequences (``dsae fit-prior``,
and the end of every ``dsae train`` stage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dsae_cli.checkpoint import load_model, save_model
from dsae_cli.data.sequences import SequenceData, video_batch
from dsae_cli.errors import DsaeError


#: at most this many training sequences (evenly spaced) are encoded to fit p(f)
FIT_PRIOR_MAX = 20000


def fit_f_prior(model, data: SequenceData, batch_size: int = 256, device: str = "cpu") -> int:
    """Fit ``model``'s p(f) to the aggregate posterior of q(f | x) over ``data`` (posterior means and
    variances, eval mode; at most FIT_PRIOR_MAX evenly spaced sequences). Returns how many it used."""
    idx = np.linspace(0, len(data) - 1, min(len(data), FIT_PRIOR_MAX)).round().astype(int) if len(data) else np.zeros(0, int)
    if len(idx) < 2:
        raise DsaeError("fitting p(f) needs at least 2 training sequences")
    model.eval()
    means, logvars = [], []
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            xs = data.x[idx[i : i + batch_size]]
            x = video_batch(xs, device) if data.modality == "video" else torch.from_numpy(np.ascontiguousarray(xs)).to(device)
            post = model.encode(x)
            means.append(post.f_mean)
            logvars.append(post.f_logvar)
    model.fit_f_prior(torch.cat(means), torch.cat(logvars))
    return len(idx)


def training_subset(data_spec: str, model, val_fraction: float = 0.05, seed: int = 0) -> SequenceData:
    """The training split (validation share held out, as ``dsae train`` does with its defaults) of
    ``data_spec`` in the form ``model`` reads it (speech: the checkpoint's own normalisation)."""
    from dsae_cli.data.sequences import load_training_data, validation_split
    from dsae_cli.data.speech import parse_speech_spec, prepare_speech_training

    cfg = model.config
    folder, modality = parse_speech_spec(data_spec, None)
    if (modality or "video") != cfg.modality:
        raise DsaeError(f"the model is a {cfg.modality} model but --data {data_spec} is {modality or 'video'} data; pass the data it was trained on")
    if cfg.modality == "speech":
        meta = getattr(model, "checkpoint_meta", None)
        train, _, _, _ = prepare_speech_training(folder, cfg, val_fraction, seed, meta)
        return train
    data = load_training_data(data_spec, cfg.seq_len, cfg.frame_size)
    train_idx, _ = validation_split(data, val_fraction, seed=seed)
    return data.subset(train_idx)


def refit_saved_f_prior(src: Path, data: SequenceData, dst: Path | None = None, device: str = "cpu", model=None) -> int:
    """Load a saved model (or take ``model``, already loaded from ``src``), fit its p(f) on ``data`` and
    save it (to ``dst``, default in place, atomically), keeping the checkpoint's metadata. Returns the
    number of sequences used."""
    model = model if model is not None else load_model(src, device=device)
    n = fit_f_prior(model, data, device=device)
    keep = {k: v for k, v in model.checkpoint_meta.items() if k not in ("format", "format_version", "library_version", "class", "modality", "config")}
    keep["f_prior_fit"] = {"sequences": n, "source": data.source}
    save_model(model.cpu(), dst or src, extra=keep)
    return n
