"""What the training loop feeds the model: batches of a data set as keyword arguments of its forward pass."""

from __future__ import annotations

import numpy as np
import torch

from dsae_cli.data.sequences import SequenceData, video_batch


class Batches:
    """Batches of a SequenceData as the model's keyword arguments: ``{"x": tensor}`` (video frames as
    floats in [0, 1]). Subclasses may pair sequences (``per_index`` 2) or augment them per step."""

    per_index = 1  # sequences each index of the order brings into a batch

    def __init__(self, data: SequenceData):
        self.data = data

    def plain(self, x: np.ndarray, device: str) -> dict:
        pin = device.startswith("cuda")  # page-locked host memory: the copy to the GPU runs asynchronously
        if self.data.modality == "video":
            return {"x": video_batch(x, device, pin_memory=pin)}
        t = torch.from_numpy(np.ascontiguousarray(x))
        return {"x": (t.pin_memory() if pin else t).to(device, non_blocking=pin)}

    def make(self, idx: np.ndarray, step: int, rank: int, device: str) -> dict:
        return self.plain(self.data.x[idx], device)


# the 6 orders of the colour channels (the first keeps them)
CHANNEL_ORDERS = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])


class AugmentedBatches(Batches):
    """Video batches, each sequence changed by ``augment`` (names of :data:`dsae_cli.train.config.AUGMENTATIONS`),
    drawn per sequence from the seed, the step and the process, so a resumed run draws alike: ``flip`` mirrors
    half the sequences left-right (the motion mirrors with them), ``channels`` gives each sequence one of the
    six orders of its colour channels (the same clip in other colours; the first order keeps it as it is)."""

    def __init__(self, data: SequenceData, augment: tuple[str, ...], seed: int = 0):
        super().__init__(data)
        self.augment, self.seed = tuple(augment), seed

    def make(self, idx: np.ndarray, step: int, rank: int, device: str) -> dict:
        return self.plain(self.apply(self.data.x[idx], step, rank), device)

    def apply(self, x: np.ndarray, step: int, rank: int) -> np.ndarray:
        """uint8 (B, T, H, W, C) -> an augmented copy (``x`` itself is left as it is)."""
        rng = np.random.default_rng([self.seed, step, rank, 2])
        n = len(x)
        x = x.copy()  # one copy; each change below gathers its sequences before writing them back
        if "flip" in self.augment:
            flip = rng.random(n) < 0.5
            x[flip] = x[flip][:, :, :, ::-1]
        if "channels" in self.augment:
            order = rng.integers(0, len(CHANNEL_ORDERS), n)
            for k in np.unique(order[order > 0]):  # one gather per order, not per sequence
                x[order == k] = x[order == k][..., CHANNEL_ORDERS[k]]
        return x
