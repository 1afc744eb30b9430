"""The training options of one stage (:class:`TrainConfig`, what a recipe's ``[train]`` table and
``dsae train``'s options set) and the small choices derived from them: the autocast precision and
a seed of its own for each process. torch is imported inside the functions that need it, so a
recipe can be read without it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dsae_cli.errors import DsaeError

LR_SCHEDULES = ("constant", "cosine", "cosine-time")
AUGMENTATIONS = ("flip", "channels")
PRECISIONS = ("auto", "fp32", "bf16", "native")


@dataclass
class TrainConfig:
    steps: int = 2000  # optimiser steps to run (the run stops at whichever of steps/minutes comes first)
    minutes: float = 0.0  # wall-clock budget in minutes; 0 means no limit
    batch_size: int = 32  # sequences per step, over all processes (torchrun: each of N takes batch_size / N)
    lr: float = 1e-3  # Adam learning rate
    seed: int = 0  # seeds the model init, the data order and every sample
    checkpoint_every: int = 500  # steps between checkpoints (model + state.pt)
    log_every: int = 10  # steps between metrics.jsonl lines
    eval_every: int = 250  # steps between validation passes (best/ is kept on validation loss)
    preview_every: int = 500  # steps between loss.png / preview.gif refreshes (0: never)
    kl_warmup: int = 0  # steps over which the KL weights rise linearly from 0 to their config values
    static_first: int = 0  # the first N steps decode every sequence from f alone (z_1:T hidden: zeros), so f learns
    #   the whole look before z learns the motion (DSAE.loss(hide_z=True)); 0 = off (the paper's training)
    grad_clip: float = 100.0  # clip the gradient norm (0: off)
    val_fraction: float = 0.05  # share of training characters/files held out for validation
    device: str = "cpu"
    lr_schedule: str = "constant"  # "constant"; "cosine": the learning rate anneals to 0 over `steps`;
    # "cosine-time": it anneals to 0 by whichever ends first, `steps` or the `minutes` wall budget (a resume
    # continues from where the anneal was and finishes it over the new budget)
    precision: str = "auto"  # autocast of the forward pass: "auto" (bf16 on CUDA, else fp32) | "fp32" | "bf16" (CUDA, or a CPU with native bf16)
    #   | "native" (bf16 wherever the device computes it natively, CPUs with AVX512-BF16 or AMX included; else fp32)
    compile: bool = False  # torch.compile the model for training (pays off on CUDA after a warm-up)
    warp: float = 0.0  # speech: each training sequence (with its partner, under pair_weight) gets its frequency
    #   axis stretched by a random factor in [1/(1+warp), 1+warp] (log-uniform): a new voice per draw (0: off)
    augment: str = ""  # video: comma-separated, drawn per sequence and step: "flip" mirrors a sequence left-right
    #   (half of them), "channels" reorders its colour channels (one of the 6 orders): the same clip with other
    #   colours, so the look is learnt apart from any one palette ("": off)
    fit_f_prior: bool = True  # at the end, fit p(f) of the final and best models to the aggregate posterior of
    #   the training sequences (DSAE.fit_f_prior: the ELBO's M-step for p(f)'s mean and covariance)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def augmentations(spec: str) -> tuple[str, ...]:
    """``train.augment`` ("flip,channels") as a tuple of names; an unknown name is an error that lists them."""
    names = tuple(dict.fromkeys(n.strip() for n in str(spec).split(",") if n.strip()))
    for name in names:
        if name not in AUGMENTATIONS:
            raise DsaeError(f"unknown train.augment {name!r}; use a comma-separated list of {', '.join(AUGMENTATIONS)} (or nothing)")
    return names


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), so autocast to it runs faster."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def autocast_dtype(precision: str, device: str):
    """The dtype the forward pass autocasts to on ``device`` (None: plain float32). "auto" is bf16 on a
    CUDA device that has it and fp32 on CPUs; "bf16" on a CPU needs native bf16 (AVX512-BF16 or AMX);
    "native" is bf16 wherever the device has it natively (such CPUs included) and fp32 elsewhere."""
    import torch

    if precision not in PRECISIONS:
        raise DsaeError(f"unknown --precision {precision!r}; use {', '.join(PRECISIONS)}")
    cuda = device.startswith("cuda")
    if precision == "bf16" and not cuda and not cpu_has_bf16():
        raise DsaeError("--precision bf16 needs --device cuda or a CPU with native bf16 (AVX512-BF16 or AMX); use --precision fp32 (or auto) here")
    if precision == "native":
        native = torch.cuda.is_bf16_supported() if cuda else (device == "cpu" and cpu_has_bf16())
        return torch.bfloat16 if native else None
    if precision == "fp32" or (precision == "auto" and not cuda):
        return None
    if precision == "auto" and not torch.cuda.is_bf16_supported():
        return None
    return torch.bfloat16


def rank_seed(seed: int, step: int, rank: int) -> int:
    """A seed of its own for each process (and restart step), reproducible from the run's seed."""
    return (seed * 1_000_003 + step * 7_919 + rank) % (2**63)
