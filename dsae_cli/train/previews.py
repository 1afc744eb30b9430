"""Pictures of a run as it trains: the loss curves and a preview of what the model does with held-out sequences."""

from __future__ import annotations

import numpy as np
import torch

from dsae_cli.data.sequences import to_uint8_frames


class Preview:
    """``loss.png`` and, for video, ``preview.gif`` (rows: originals, reconstructions, each row's
    content with the previous row's motion); for speech, ``preview.png`` (the same as spectrograms)."""

    def on_preview(self, trainer, history: list[dict]) -> None:
        from dsae_cli.io.plots import plot_loss_curves

        plot_loss_curves(trainer.run_dir / "loss.png", history)
        if trainer.data.modality == "video":
            self.video(trainer)
        else:
            self.speech(trainer)

    @torch.no_grad()
    def video(self, trainer) -> None:
        from dsae_cli.io import media

        src = trainer.val if trainer.val is not None and len(trainer.val) >= 2 else trainer.data
        # one sequence from each of several groups (characters), at different offsets within the
        # group (different motions for Sprites), so the swap row mixes different looks and moves
        _, firsts, counts = np.unique(src.groups, return_index=True, return_counts=True)
        pick = [int(f + (4 * i) % c) for i, (f, c) in enumerate(zip(firsts[:6], counts[:6]))]
        if len(pick) < 2:
            pick = list(range(min(6, len(src))))
        x = trainer.batches.plain(src.x[pick], trainer.device)["x"]
        model = trainer.model.eval()
        seqs = [to_uint8_frames(t) for t in (x, model.reconstruct(x), model.swap(x, x.roll(1, dims=0)))]
        rows = [seq[i] for seq in seqs for i in range(len(pick))]
        media.write_gif(trainer.run_dir / "preview.gif", media.grid_animation(rows, cols=len(pick)), fps=8)

    @torch.no_grad()
    def speech(self, trainer) -> None:
        from dsae_cli.io import audio, media
        from dsae_cli.io.render import spectrogram_picture

        src = trainer.val if trainer.val is not None and len(np.unique(trainer.val.groups)) >= 2 else trainer.data
        _, firsts, counts = np.unique(src.groups, return_index=True, return_counts=True)
        # a segment from the middle of each of six speakers (first segments are often near-silent)
        pick = (firsts + counts // 2)[:6].tolist() if len(firsts) >= 2 else list(range(min(6, len(src))))
        x = trainer.batches.plain(src.x[pick], trainer.device)["x"]
        model = trainer.model.eval()
        rows = [x, model.reconstruct(x), model.swap(x, x.roll(1, dims=0))]
        spec = audio.SpectrogramConfig.from_dict(trainer.checkpoint_extra["spectrogram"])
        norm = audio.Normalisation.from_dict(trainer.checkpoint_extra["normalisation"])
        panels = [norm.invert(t[i].cpu().numpy()) for t in rows for i in range(len(pick))]
        labels = [f"{name} {i + 1}" for name in ("orig", "recon", "swap") for i in range(len(pick))]
        media.write_png(trainer.run_dir / "preview.png", spectrogram_picture(panels, labels, spec, scale=3))
