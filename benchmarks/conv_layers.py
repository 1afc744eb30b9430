"""Where a Sprites model's training time goes: each conv layer of its frame codec, timed alone.

Run:  python benchmarks/conv_layers.py [--recipe sprites] [--frames 256] [--repeats 10] [--system-malloc] [--json]

Like `dsae train`, it has malloc keep freed memory for reuse (`--system-malloc`: not), so no call pays
for faulting in the pages of its output.

For every 4x4 stride-2 convolution of the f encoder and every 4x4 stride-2 transposed convolution of
the decoder (the widths of the recipe's model, default `sprites`; one batch of 32 sequences x 8 frames
= 256 frames), prints the median time of a forward + backward pass with PyTorch's own kernels (oneDNN
on CPU, channels-last, as the model runs them) and of two exact rewrites of the same layer (same
weights, same outputs):

- transposed convs: ``phase``, four 2x2 convolutions (one per output phase) interleaved, and
  ``gemm``, one matmul to the 16 kernel taps followed by ``F.fold`` (col2im);
- convs: ``s2d``, space-to-depth (2x2 pixel unshuffle) then a 2x2 stride-1 convolution, and
  ``gemm``, ``F.unfold`` (im2col) then one matmul.

The decoder's last layer draws what the model's likelihood needs: 3 colours, or for the mixture K
colours and K weights (12 maps for K = 3).

Also the layer's FLOP/s (2 x multiply-adds; backward counted as the weight and input gradients the
model needs: none for the first layer's input), the machine's fp32 matmul peak, and the ceiling these
eight layers put on the model FLOP utilisation of ``train_throughput.py``: the MFU of a training step
that took exactly their time (the model's whole forward + backward FLOPs for that many frames, over
their summed time, over the peak), i.e. with everything else in the step (z's encoder, the LSTMs,
FiLM, activations, the loss, Adam) free.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from dsae_cli.data.sequences import video_batch
from dsae_cli.runtime import keep_freed_memory
from models import DSAE, DSAEConfig
from models.frames import decoder_out_channels
from train_throughput import count_flops_per_seq, load_recipe, matmul_peak, video_recipes  # the same measurements (this folder is on the path)

# output row 2i + d of a 4x4 / stride 2 / padding 1 transposed conv reads input rows (i - 1, i) through
# kernel rows (3, 1) for d = 0, and rows (i, i + 1) through (2, 0) for d = 1
TAPS = ((3, 1), (2, 0))


def conv_t_ref(x, w):
    return F.conv_transpose2d(x, w, stride=2, padding=1)


def conv_t_phase(x, w):
    n, _, h, wd = x.shape
    outs = []
    for dy in (0, 1):
        for dx in (0, 1):
            k = w[:, :, list(TAPS[dy])][:, :, :, list(TAPS[dx])].transpose(0, 1)
            outs.append(F.conv2d(F.pad(x, (1 - dx, dx, 1 - dy, dy)), k))
    return torch.stack(outs, 2).view(n, -1, 2, 2, h, wd).permute(0, 1, 4, 2, 5, 3).reshape(n, -1, 2 * h, 2 * wd)


def conv_t_gemm(x, w):
    n, c, h, wd = x.shape
    cout = w.shape[1]
    col = x.permute(0, 2, 3, 1).reshape(n * h * wd, c) @ w.reshape(c, cout * 16)
    return F.fold(col.view(n, h * wd, cout * 16).transpose(1, 2), (2 * h, 2 * wd), 4, stride=2, padding=1)


def conv_ref(x, w):
    return F.conv2d(x, w, stride=2, padding=1)


def conv_s2d(x, w):
    cout, c = w.shape[:2]
    k = w.view(cout, c, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(cout, c * 4, 2, 2)
    return F.conv2d(F.pixel_unshuffle(F.pad(x, (1, 1, 1, 1)), 2), k)


def conv_gemm(x, w):
    n, _, h, wd = x.shape
    cout = w.shape[0]
    col = F.unfold(x, 4, padding=1, stride=2)
    return (col.transpose(1, 2) @ w.view(cout, -1).t()).transpose(1, 2).reshape(n, cout, h // 2, wd // 2)


def timed(fn, x, w, repeats: int) -> float:
    for _ in range(2):
        fn(x, w).sum().backward()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x, w).sum().backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description="per-layer conv timings of a recipe's frame codec")
    ap.add_argument("--recipe", default="sprites", choices=video_recipes(), help="the built-in recipe whose model's widths are timed (default: sprites)")
    ap.add_argument("--frames", type=int, default=256, help="frames per call (batch 32 x 8 frames)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--system-malloc", action="store_true", help="leave glibc's malloc as it is (as dsae train does not: without this, freed memory is kept for reuse, dsae_cli.runtime.keep_freed_memory)")
    args = ap.parse_args()
    if not args.system_malloc:
        keep_freed_memory()  # as dsae train does: otherwise every call pays for faulting in its output's pages
    torch.manual_seed(0)
    cfg = DSAEConfig(**load_recipe(args.recipe).model)
    n, width = args.frames, cfg.conv_width
    last = decoder_out_channels(cfg)
    rows = []
    layers = [("encoder", 3, width, 64), ("encoder", width, 2 * width, 32), ("encoder", 2 * width, 4 * width, 16),
              ("encoder", 4 * width, 8 * width, 8), ("decoder", 8 * width, 4 * width, 4), ("decoder", 4 * width, 2 * width, 8),
              ("decoder", 2 * width, width, 16), ("decoder", width, last, 32)]  # fmt: skip
    for part, cin, cout, side in layers:
        x = torch.randn(n, cin, side, side).contiguous(memory_format=torch.channels_last).requires_grad_(cin != 3)
        if part == "encoder":
            w = (torch.randn(cout, cin, 4, 4) * 0.05).requires_grad_()
            variants = {"torch": conv_ref, "s2d": conv_s2d, "gemm": conv_gemm}
            macs = n * (side // 2) ** 2 * cout * cin * 16
        else:
            w = (torch.randn(cin, cout, 4, 4) * 0.05).requires_grad_()
            variants = {"torch": conv_t_ref, "phase": conv_t_phase, "gemm": conv_t_gemm}
            macs = n * side**2 * cin * cout * 16
        ref = variants["torch"](x, w)
        row = {"layer": f"{part} {cin}->{cout} at {side}x{side}"}
        for name, fn in variants.items():
            err = (fn(x, w) - ref).abs().max().item()
            if err > 1e-3:
                raise SystemExit(f"{name} differs from torch's layer by {err}")
            row[f"{name}_ms"] = round(timed(fn, x, w, args.repeats) * 1e3, 1)
        passes = 3 if x.requires_grad else 2  # forward, weight gradient, input gradient (when needed)
        row["torch_gflops"] = round(2 * macs * passes / (row["torch_ms"] / 1e3) / 1e9, 1)
        rows.append(row)
        if not args.json:
            print(row, flush=True)
    peak = matmul_peak() / 1e9
    total = sum(r["torch_ms"] for r in rows)
    seqs = n / cfg.seq_len
    x = video_batch(np.random.RandomState(0).randint(0, 256, (2, cfg.seq_len, cfg.frame_size, cfg.frame_size, 3), dtype=np.uint8))
    flops = count_flops_per_seq(DSAE(cfg), x)
    ceiling = seqs * flops / (total / 1e3) / (peak * 1e9)
    res = {
        "recipe": args.recipe, "frames": n, "matmul_peak_gflops": round(peak, 1), "torch_total_ms": round(total, 1),
        "model_flops_per_seq": int(flops), "mfu_ceiling": round(ceiling, 3), "layers": rows,
    }  # fmt: skip
    print(
        json.dumps(res) if args.json else f"matmul peak {peak:.1f} GFLOP/s; the eight layers with torch's kernels: {total:.1f} ms; "
        f"a step of {seqs:g} sequences ({flops / 1e9:.3f} GFLOP each) that took only that long: MFU {ceiling:.3f}"
    )


if __name__ == "__main__":
    main()
