"""Training throughput of a recipe's DSAE on this machine, and its model FLOP utilisation (MFU).

Run:  python benchmarks/train_throughput.py [--recipe sprites] [--batch-size 32] [--steps 12] [--precision fp32|bf16] [--likelihood gaussian|mixture|...] [--conv-width N] [--system-malloc] [--plain-convs] [--json]

The model is the ``[model]`` table of a built-in video recipe (dsae_cli/recipes/: sprites, sprites-wide,
paper, tiny); only its architecture matters here, not the recipe's training stages.

Prints seq_per_s (training sequences per second: median over timed steps after warm-up, data
drawn from uint8 Sprites-shaped batches as the trainer does), flops_per_seq (forward + backward
FLOPs per sequence counted with torch.utils.flop_counter, with oneDNN switched off for that
counting pass only, because oneDNN's fused LSTM kernels are invisible to the counter), the
machine's measured fp32 matmul peak (the higher of two measurements, before and after the timed steps), and
mfu = seq_per_s * flops_per_seq / peak.
"""

from __future__ import annotations

from machine import describe  # benchmarks/machine.py
import argparse
import json
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from dsae_cli.data.sequences import video_batch
from dsae_cli.runtime import keep_freed_memory
from dsae_cli.train.config import cpu_has_bf16
from dsae_cli.train.recipes import builtin_names, load_recipe
from models import DSAE, DSAEConfig
from models import frames
from models.config import LIKELIHOODS


def video_recipes() -> list[str]:
    """The built-in recipes whose model reads video frames (the speech ones have no frame codec)."""
    return [name for name in builtin_names() if load_recipe(name).model.get("modality", "video") == "video"]


def matmul_peak(n: int = 2048, reps: int = 10, dtype=torch.float32) -> float:
    """Measured matmul FLOP/s in ``dtype`` (best of several n x n products)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def count_flops_per_seq(model, x) -> float:
    """Forward + backward FLOPs per sequence of one training step on batch ``x``, counted with oneDNN off
    so that the LSTMs' matmuls are visible to the counter (leaves gradients in the model)."""
    with torch.backends.mkldnn.flags(enabled=False):
        counter = FlopCounterMode(display=False)
        with counter:
            model.loss(x)["loss"].backward()
    return counter.get_total_flops() / x.shape[0]


def train_step(model, opt, x, bf16: bool = False):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):  # as dsae train --precision bf16 on a CPU
        out = model(x)  # forward() is the loss, so a compiled model runs compiled
    opt.zero_grad(set_to_none=True)
    out["loss"].backward()
    opt.step()


def _ddp_worker(rank: int, world: int, recipe: str, batch_size: int, steps: int, threads: int, port: int, queue) -> None:
    """One of ``world`` processes training one DDP replica on its share of every batch (as ``torchrun
    --nproc_per_node=N -m dsae_cli train`` does); rank 0 puts the per-step wall times on ``queue``."""
    import os

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = DSAE(DSAEConfig(**load_recipe(recipe).model))
    net = DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    per = batch_size // world
    cfg = model.config
    data = np.random.RandomState(rank).randint(0, 256, (per * 4, cfg.seq_len, cfg.frame_size, cfg.frame_size, 3), dtype=np.uint8)
    times = []
    for i in range(3 + steps):
        dist.barrier()
        t = time.perf_counter()
        j = (i % 4) * per
        train_step(net, opt, video_batch(data[j : j + per]))
        dist.barrier()
        if i >= 3:
            times.append(time.perf_counter() - t)
    if rank == 0:
        queue.put(times)
    dist.destroy_process_group()


def ddp_step_seconds(recipe: str, batch_size: int, steps: int, processes: int, threads: int) -> float:
    """Median wall time of one global training step split over ``processes`` DDP processes."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:  # a free port for the process group
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(processes, recipe, batch_size, steps, threads, port, queue), nprocs=processes, join=True, start_method="spawn")
    return statistics.median(queue.get())


def main() -> None:
    ap = argparse.ArgumentParser(description="DSAE training throughput and MFU")
    ap.add_argument("--recipe", default="sprites", choices=video_recipes(), help="the built-in recipe whose model is timed (default: sprites, the default Sprites model)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=12, help="timed steps (after 3 warm-up steps)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--compile", action="store_true", help="time torch.compile'd steps (as dsae train --set train.compile=true; FLOPs counted eagerly)")
    ap.add_argument("--processes", type=int, default=1, help="time N DDP processes (gloo) sharing each batch, as torchrun --nproc_per_node=N does; each gets --threads threads (default 1)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="bf16: autocast the forward pass to bfloat16 (dsae train --precision bf16, CPUs with native bf16); FLOPs and mfu stay counted against the fp32 peak, mfu_bf16_peak against a bf16 matmul's")
    ap.add_argument("--conv-width", type=int, default=0, help="the recipe's model with another conv width (channels of the first conv layer; dsae train --set model.conv_width=N)")
    ap.add_argument("--z-conv-width", type=int, default=0, help="the recipe's model with another width of z's own frame encoder (dsae train --set model.z_conv_width=N)")
    ap.add_argument("--likelihood", default=None, choices=list(LIKELIHOODS), help="the recipe's model with another p(x_t | z_t, f) (dsae train --set model.likelihood=NAME); default: the recipe's")
    ap.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc as it is (dsae train makes it keep freed memory, dsae_cli.runtime.keep_freed_memory)")
    ap.add_argument("--plain-convs", action="store_true", help="run the frame codec's convolutions as torch's own layers (models.frames.CPU_SHORTCUTS off: the codec normally sums their bias gradients itself and adds the decoder's last bias with the NCHW conversion): same model, same gradients")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.precision == "bf16" and not cpu_has_bf16():  # oneDNN has no bf16 LSTM on such CPUs
        ap.error("--precision bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has none, use fp32")
    if args.plain_convs:
        frames.CPU_SHORTCUTS = False  # torch's own convolution layers, bias included
    kept = False if args.system_malloc else keep_freed_memory()  # as dsae train does
    if args.processes > 1 and (args.compile or args.batch_size % args.processes or args.precision != "fp32" or args.likelihood or args.conv_width or args.z_conv_width or args.plain_convs):
        ap.error("--processes needs a --batch-size it divides, no --compile, fp32, no --likelihood, no --conv-width or --z-conv-width and no --plain-convs")
    if args.threads and args.processes == 1:  # with --processes the parent keeps every core for the peak
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    overrides = {}
    if args.likelihood:
        overrides["likelihood"] = args.likelihood
    if args.conv_width:
        overrides["conv_width"] = args.conv_width
    if args.z_conv_width:
        overrides["z_conv_width"] = args.z_conv_width
    cfg = DSAEConfig(**{**load_recipe(args.recipe).model, **overrides})
    model = DSAE(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.RandomState(0)
    data = rng.randint(0, 256, (args.batch_size * 4, cfg.seq_len, cfg.frame_size, cfg.frame_size, 3), dtype=np.uint8)

    def batch(i):
        j = (i % 4) * args.batch_size
        return video_batch(data[j : j + args.batch_size])

    flops_per_seq = count_flops_per_seq(model, batch(0))
    opt.zero_grad(set_to_none=True)
    # the peak is measured before and after the timed steps and the higher one kept: on a shared machine
    # a neighbour's load can halve one measurement (a shared VM can swing between 90 and 156 GFLOP/s
    # within minutes), and an understated peak would overstate the MFU
    peak_before = matmul_peak()

    if args.processes > 1:
        step_s = ddp_step_seconds(args.recipe, args.batch_size, args.steps, args.processes, args.threads or 1)
    else:
        step_model = torch.compile(model) if args.compile else model
        bf16 = args.precision == "bf16"
        for i in range(3):
            train_step(step_model, opt, batch(i), bf16)
        times = []
        for i in range(args.steps):
            t = time.perf_counter()
            train_step(step_model, opt, batch(i), bf16)  # the uint8 -> float conversion is part of a real step
            times.append(time.perf_counter() - t)
        step_s = statistics.median(times)
    seq_per_s = args.batch_size / step_s
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    res = {
        "machine": describe(),
        "recipe": args.recipe,
        "conv_width": cfg.conv_width,
        "z_conv_width": cfg.z_conv_width or cfg.conv_width,
        "likelihood": cfg.likelihood,
        "batch_size": args.batch_size,
        "threads": torch.get_num_threads() if args.processes == 1 else args.threads or 1,
        "processes": args.processes,
        "compiled": args.compile,
        "precision": args.precision,
        "malloc_keeps_freed_memory": kept,
        "plain_convs": args.plain_convs,
        "seq_per_s": round(seq_per_s, 2),
        "flops_per_seq": int(flops_per_seq),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "matmul_peak_before_after_gflops": [round(peak_before / 1e9, 1), round(peak_after / 1e9, 1)],
        "achieved_gflops": round(seq_per_s * flops_per_seq / 1e9, 1),
        "mfu": round(seq_per_s * flops_per_seq / peak, 3),
        "params": sum(p.numel() for p in model.parameters()),
    }
    if args.precision == "bf16":
        peak16 = matmul_peak(dtype=torch.bfloat16)
        res["matmul_peak_bf16_gflops"] = round(peak16 / 1e9, 1)
        res["mfu_bf16_peak"] = round(seq_per_s * flops_per_seq / peak16, 3)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
