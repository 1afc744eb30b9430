"""GPU check of dsae training: does CUDA train the same model as the CPU, and how fast is it?

Run on a machine with a CUDA GPU (from the repository root):

    python benchmarks/gpu_check.py                 # about 3-6 minutes, most of it torch.compile
    python benchmarks/gpu_check.py --no-compile    # eager only, about a minute

(a) correctness: --steps optimiser steps of the ``sprites`` recipe's model and first training stage
    through the real Trainer (assembled as ``dsae train`` does it), from the same initial weights, the same batches and the same posterior noise (drawn on the CPU for every
    device), on the CPU in fp32 and on CUDA in fp32 (TF32 off) and in bf16 autocast. Prints the largest
    relative difference of the per-step losses from the CPU's, and of the weights after the last step.
(b) throughput: training sequences per second (full steps: batch copy from pinned memory, forward,
    backward, clipping, Adam) of the ``sprites`` and ``paper`` recipes on CUDA, fp32 and bf16, eager
    and torch.compile, at each recipe's batch size (its first stage's) and at --big-batch.

Prints one JSON line per figure (the first names the GPU). Exit status: 0 all checks within
tolerance, 1 a correctness check failed, 2 no CUDA GPU. ``--smoke`` runs the same code on the CPU
with the tiny recipe (fp32 only), to check the script itself without a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import models.dsae as dsae_module
from dsae_cli.data import sprites
from dsae_cli.data.sequences import SequenceData
from dsae_cli.train.config import TrainConfig
from dsae_cli.train.loop import Trainer
from dsae_cli.train.recipes import STAGE_KEYS, builtin_names, load_recipe
from dsae_cli.train.stage import dsae_parts
from models import DSAE, DSAEConfig

TOLERANCE = {"fp32": 1e-3, "bf16": 5e-2}  # largest relative loss difference from the CPU run


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def sprite_data(n_characters: int) -> SequenceData:
    """Real Sprites sequences (9 motions per character), as the trainer holds them."""
    ids = np.linspace(0, sprites.N_CHARACTERS - 1, n_characters).astype(int)
    arrays = sprites.build_characters(np.unique(ids))
    return SequenceData(arrays["x"], arrays["char_id"], "video", {}, "sprites:gpu-check")


class SharedNoise:
    """Posterior noise drawn from one seeded CPU generator whatever the device, so the CPU and GPU
    runs see the same samples (torch.randn_like on CUDA would draw from another stream)."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)

    def reparameterize(self, mean, logvar):
        eps = torch.randn(mean.shape, generator=self.g).to(mean.device, mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps


def video_recipes() -> list[str]:
    """The built-in recipes whose model reads video frames."""
    return [name for name in builtin_names() if load_recipe(name).model.get("modality", "video") == "video"]


def first_stage(recipe: str) -> tuple[dict, dict]:
    """The model fields (with the first stage's loss weights) and the first stage's training options of a recipe."""
    r = load_recipe(recipe)
    stage = r.stages[0]
    return {**r.model, **stage["model"]}, {k: v for k, v in stage.items() if k not in STAGE_KEYS}


def recipe_batch_size(recipe: str) -> int:
    return int(first_stage(recipe)[1].get("batch_size", TrainConfig.batch_size))


def make_trainer(recipe: str, data: SequenceData, device: str, precision: str, compile_model: bool, batch_size: int, run_dir: Path):
    model_fields, train_fields = first_stage(recipe)
    torch.manual_seed(0)  # the same initial weights on every device
    model_cfg = DSAEConfig(**model_fields)
    model = DSAE(model_cfg)
    cfg = TrainConfig.from_dict({**train_fields, "batch_size": batch_size, "device": device, "precision": precision,
                                 "compile": compile_model, "seed": 0})  # fmt: skip
    return Trainer(model, data, None, cfg, run_dir, **dsae_parts(model_cfg, cfg, data, {}))


def correctness(recipe: str, data: SequenceData, steps: int, modes: list[tuple[str, str]], run_dir: Path) -> bool:
    """Train ``steps`` steps per (device, precision) with shared noise; compare losses and weights with the CPU."""
    real_reparameterize = dsae_module.reparameterize
    results = {}
    try:
        for device, precision in [("cpu", "fp32"), *modes]:
            noise = SharedNoise(1)
            dsae_module.reparameterize = noise.reparameterize
            trainer = make_trainer(recipe, data, device, precision, False, recipe_batch_size(recipe), run_dir)
            losses = []
            for _ in range(steps):
                out = trainer.train_step()
                losses.append(float("nan") if out is None else out["loss"])
            weights = {k: v.detach().float().cpu() for k, v in trainer.model.state_dict().items()}
            results[(device, precision)] = (np.array(losses), weights)
    finally:
        dsae_module.reparameterize = real_reparameterize
    ref_losses, ref_weights = results[("cpu", "fp32")]
    ok = True
    for device, precision in modes:
        losses, weights = results[(device, precision)]
        rel = np.abs(losses - ref_losses) / np.abs(ref_losses)
        w_rel = max(float((weights[k] - ref_weights[k]).abs().max() / ref_weights[k].abs().max().clamp_min(1e-12)) for k in ref_weights)
        good = bool(np.isfinite(rel).all() and rel.max() <= TOLERANCE[precision])
        ok &= good
        emit(figure="correctness", recipe=recipe, device=device, precision=precision, steps=steps,
             cpu_losses=[round(float(v), 3) for v in ref_losses], losses=[round(float(v), 3) for v in losses],
             max_rel_loss_diff=float(rel.max()), max_rel_weight_diff=w_rel, tolerance=TOLERANCE[precision], ok=good)  # fmt: skip
    return ok


def throughput(recipe: str, data: SequenceData, device: str, precision: str, compile_model: bool, batch_size: int,
               warmup: int, timed: int, run_dir: Path) -> None:  # fmt: skip
    trainer = make_trainer(recipe, data, device, precision, compile_model, batch_size, run_dir)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(warmup):  # includes torch.compile's compilation
        trainer.train_step()
    sync()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(timed):
        trainer.train_step()
    sync()
    elapsed = time.perf_counter() - t0
    fields = dict(figure="throughput", recipe=recipe, device=device, precision=precision, compile=compile_model,
                  batch_size=batch_size, seq_per_s=round(batch_size * timed / elapsed, 1),
                  step_ms=round(1000 * elapsed / timed, 2), warmup_s=round(warm_s, 1))  # fmt: skip
    if device.startswith("cuda"):
        fields["max_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        torch.cuda.reset_peak_memory_stats()
    emit(**fields)


def main() -> int:
    ap = argparse.ArgumentParser(description="dsae on CUDA: correctness against the CPU, and training throughput")
    ap.add_argument("--steps", type=int, default=5, help="optimiser steps compared in the correctness check")
    ap.add_argument("--recipes", nargs="+", default=["sprites", "paper"], choices=video_recipes(), help="built-in recipes timed (their model and first stage)")
    ap.add_argument("--big-batch", type=int, default=256, help="also time this batch size (0: only the recipes' own)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (compilation happens here)")
    ap.add_argument("--timed", type=int, default=30, help="timed steps per figure")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile figures")
    ap.add_argument("--smoke", action="store_true", help="run the script's logic on the CPU (tiny recipe, fp32) without a GPU")
    args = ap.parse_args()

    if args.smoke:
        device, precisions, recipes, compile_modes = "cpu", ["fp32"], ["tiny"], [False]
        args.big_batch, args.timed, args.warmup = 0, 3, 1
        check_recipe, modes = "tiny", [("cpu", "fp32")]
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print(
                "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False; "
                f"torch {torch.__version__}, built for CUDA {torch.version.cuda}); run it on a machine with an NVIDIA GPU "
                "and a CUDA build of PyTorch, or use --smoke to test the script on the CPU",
                file=sys.stderr,
            )
            return 2
        device, recipes = "cuda", args.recipes
        precisions = ["fp32", "bf16"] if torch.cuda.is_bf16_supported() else ["fp32"]
        compile_modes = [False] if args.no_compile else [False, True]
        check_recipe, modes = "sprites", [("cuda", p) for p in precisions]
    emit(
        figure="device", gpu=torch.cuda.get_device_name() if device == "cuda" else None, torch=torch.__version__,
        cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version() if device == "cuda" else None,
    )  # fmt: skip

    run_dir = Path(tempfile.mkdtemp(prefix="dsae-gpu-check-"))
    batches = [recipe_batch_size(r) for r in recipes] + ([args.big_batch] if args.big_batch else [])
    data = sprite_data(max(8, -(-max(batches) // 9) + 4))  # enough characters for the largest batch

    # (a) correctness: TF32 off, so fp32 on the GPU means fp32
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    ok = correctness(check_recipe, data, args.steps, modes, run_dir)
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for convolutions, as `dsae train` runs

    # (b) throughput
    for recipe in recipes:
        sizes = [recipe_batch_size(recipe)] + ([args.big_batch] if args.big_batch else [])
        for compile_model in compile_modes:
            for precision in precisions:
                for batch_size in sizes if not compile_model else sizes[:1]:
                    try:
                        throughput(recipe, data, device, precision, compile_model, batch_size, args.warmup, args.timed, run_dir)
                    except Exception as err:  # a figure that fails (e.g. compile) must not hide the others
                        emit(figure="throughput", recipe=recipe, precision=precision, compile=compile_model,
                             batch_size=batch_size, error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")  # fmt: skip
                    if device == "cuda":
                        torch.cuda.empty_cache()
    emit(figure="summary", correctness_ok=ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
