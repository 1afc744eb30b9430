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
