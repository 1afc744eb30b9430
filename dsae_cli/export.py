"""Export a trained DSAE as two standalone graphs, so it can be served without dsae or its Python code.

  encoder  frames (B, T, *frame) float32 -> f_mean, f_logvar (B, f_dim), z_mean, z_logvar (B, T, z_dim)
  decoder  f (B, f_dim), z (B, T, z_dim) float32 -> frames (B, T, *frame), the mean of p(x_1:T | z_1:T, f)
           (for a mixture likelihood, each pixel's most probable component's colour: DSAE.decode)

Video frames are (C, H, W) with values in [0, 1]; speech frames are (n_bins,) normalised log
magnitudes (the checkpoint's normalisation is copied into ``export.json``). B and T may differ from
the sizes used when exporting. Formats:

  torchscript  encoder.pt / decoder.pt via torch.jit.trace; load with torch.jit.load (needs only torch)
  onnx         encoder.onnx / decoder.onnx; run with onnxruntime (export needs the ``onnx`` package)

``export.json`` beside them describes inputs, outputs and the model config. Every exported graph is
checked against the PyTorch model on inputs of two different sizes before it is kept.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from dsae_cli import __version__
from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path

FORMATS = ("onnx", "torchscript")
EXPORT_FORMAT = "dsae-export"
EXPORT_VERSION = 1
ONNX_OPSET = 17
TOLERANCE = 1e-4  # largest absolute difference from the PyTorch outputs an export may show
ENCODER_OUTPUTS = ("f_mean", "f_logvar", "z_mean", "z_logvar")


class EncoderGraph(nn.Module):
    """frames -> posterior means and log-variances (z's full posterior is conditioned on f_mean)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor):
        post = self.model.encode(frames, sample=False)
        return post.f_mean, post.f_logvar, post.z_mean, post.z_logvar


class DecoderGraph(nn.Module):
    """(f, z_1:T) -> the mean of p(x_1:T | z_1:T, f)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, f: torch.Tensor, z: torch.Tensor):
        return self.model.decode(f, z)


def example_inputs(model, batch: int, steps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(frames, f, z) of the given sizes, drawn from a fixed seed."""
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, steps, *cfg.frame_shape, generator=g)
    if cfg.modality != "video":
        frames = frames * 4.0 - 2.0  # normalised log magnitudes are centred, not in [0, 1]
    f = torch.randn(batch, cfg.f_dim, generator=g)
    z = torch.randn(batch, steps, cfg.z_dim, generator=g)
    return frames, f, z


def missing_onnx_packages(verify: bool = True) -> list[str]:
    names = ["onnx"] + (["onnxruntime"] if verify else [])
    return [n for n in names if importlib.util.find_spec(n) is None]


def export_model(model, out_dir: Path, fmt: str, source: str = "") -> dict:
    """Write the encoder and decoder graphs and ``export.json`` into ``out_dir``; returns the description."""
    if fmt not in FORMATS:
        raise DsaeError(f"unknown --format {fmt!r}; use {' or '.join(FORMATS)}")
    if fmt == "onnx" and "onnx" in missing_onnx_packages(verify=False):
        raise DsaeError(
            "ONNX export needs the onnx package (and onnxruntime to check the result): "
            "pip install 'dsae[export]' (or pip install onnx onnxruntime), or use --format torchscript"
        )
    model = model.cpu().eval()
    cfg = model.config
    out_dir = Path(out_dir)
    out_dir.mkdir(exist_ok=True)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    files = {"encoder": f"encoder{suffix}", "decoder": f"decoder{suffix}"}
    frames, f, z = example_inputs(model, 2, cfg.seq_len)
    graphs = {"encoder": (EncoderGraph(model).eval(), (frames,)), "decoder": (DecoderGraph(model).eval(), (f, z))}
    runtime = None
    worst = 0.0
    for part, (module, inputs) in graphs.items():
        with atomic_path(out_dir / files[part]) as tmp:
            if fmt == "torchscript":
                _export_torchscript(module, inputs, tmp)
            else:
                _export_onnx(module, inputs, tmp, part)
            diff, runtime_name = _check(module, part, tmp, fmt, model)
            if diff is not None:
                worst = max(worst, diff)
            runtime = runtime_name
    desc = describe(model, fmt, files, source)
    desc["verified"] = (
        {"runtime": runtime, "max_abs_diff": worst, "tolerance": TOLERANCE}
        if runtime
        else {"runtime": None, "note": "onnxruntime is not installed, so the graphs were not run; pip install onnxruntime"}
    )
    with atomic_path(out_dir / "export.json") as tmp:
        tmp.write_text(json.dumps(desc, indent=2) + "\n")
    return desc


def _export_torchscript(module: nn.Module, inputs: tuple, path: Path) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        # jit.trace is deprecated in favour of torch.export, and the LSTMs' internal shape checks
        # warn that they are traced as constants; the check in _check covers other batch sizes and T
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, inputs, check_trace=False)
        torch.jit.save(traced, str(path))


def _export_onnx(module: nn.Module, inputs: tuple, path: Path, part: str) -> None:
    if part == "encoder":
        names, outputs = ["frames"], list(ENCODER_OUTPUTS)
        axes = {"frames": {0: "batch", 1: "time"}, "f_mean": {0: "batch"}, "f_logvar": {0: "batch"},
                "z_mean": {0: "batch", 1: "time"}, "z_logvar": {0: "batch", 1: "time"}}  # fmt: skip
    else:
        names, outputs = ["f", "z"], ["frames"]
        axes = {"f": {0: "batch"}, "z": {0: "batch", 1: "time"}, "frames": {0: "batch", 1: "time"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # the TorchScript-based exporter (dynamo=False): the torch.export-based one (torch 2.13) fixes
        # the time axis of the LSTMs to the example's T and takes ~15 s per graph; this one keeps B and T
        # free (checked below) in under a second
        torch.onnx.export(
            module, inputs, str(path), input_names=names, output_names=outputs, dynamic_axes=axes,
            opset_version=ONNX_OPSET, dynamo=False,
        )  # fmt: skip


def _check(module: nn.Module, part: str, path: Path, fmt: str, model) -> tuple[float | None, str | None]:
    """Run the exported graph on two input sizes and compare with PyTorch; (max |diff|, runtime name)."""
    cfg = model.config
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated in favour of torch.export, still the way to load these
            graph = torch.jit.load(str(path))

        def run(*xs):
            with torch.no_grad():
                out = graph(*xs)
            return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]

        runtime = f"torch.jit {torch.__version__}"
    else:
        if importlib.util.find_spec("onnxruntime") is None:
            return None, None
        import onnxruntime as ort

        graph = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in graph.get_inputs()]

        def run(*xs):
            return graph.run(None, {n: x.numpy() for n, x in zip(names, xs)})

        runtime = f"onnxruntime {ort.__version__}"
    worst = 0.0
    for batch, steps, seed in ((2, cfg.seq_len, 1), (3, max(2, cfg.seq_len - 3), 2), (1, cfg.seq_len + 2, 3)):
        frames, f, z = example_inputs(model, batch, steps, seed)
        xs = (frames,) if part == "encoder" else (f, z)
        with torch.no_grad():
            ref = module(*xs)
        ref = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
        got = run(*xs)
        for r, g in zip(ref, got):
            if r.shape != tuple(g.shape):
                raise DsaeError(f"the exported {part} gives shape {tuple(g.shape)} instead of {r.shape} (B {batch}, T {steps}); please report this")
            worst = max(worst, float(abs(r - g).max()))
    if worst > TOLERANCE:
        raise DsaeError(f"the exported {part} differs from the model by up to {worst:.2g} (tolerance {TOLERANCE:g}); nothing was kept, please report this")
    return worst, runtime


def describe(model, fmt: str, files: dict, source: str) -> dict:
    cfg = model.config
    frame = list(cfg.frame_shape)
    frame_axes = ["channels", "height", "width"] if cfg.modality == "video" else ["bins"]
    values = "float32 in [0, 1] (RGB)" if cfg.modality == "video" else "float32 normalised log magnitudes (see checkpoint.normalisation)"
    meta = dict(getattr(model, "checkpoint_meta", {}) or {})
    extra = {k: v for k, v in meta.items() if k not in ("format", "format_version", "library_version", "class", "modality", "config")}

    def tensor(name, shape, what):
        return {"name": name, "dtype": "float32", "shape": shape, "description": what}

    return {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_VERSION,
        "graph_format": fmt,
        "onnx_opset": ONNX_OPSET if fmt == "onnx" else None,
        "library_version": __version__,
        "torch_version": torch.__version__,
        "model_id": getattr(model, "model_id", None),
        "source": source,
        "modality": cfg.modality,
        "encoder": {
            "file": files["encoder"],
            "inputs": [tensor("frames", ["batch", "time", *frame], f"{values}; frame axes {frame_axes}")],
            "outputs": [
                tensor("f_mean", ["batch", cfg.f_dim], "mean of q(f | x_1:T), the content"),
                tensor("f_logvar", ["batch", cfg.f_dim], "log-variance of q(f | x_1:T)"),
                tensor("z_mean", ["batch", "time", cfg.z_dim], "means of q(z_t | ...), the motion" + (" (conditioned on f_mean)" if cfg.posterior == "full" else "")),
                tensor("z_logvar", ["batch", "time", cfg.z_dim], "log-variances of q(z_t | ...)"),
            ],
        },
        "decoder": {
            "file": files["decoder"],
            "inputs": [
                tensor("f", ["batch", cfg.f_dim], "content latent (e.g. f_mean of one input)"),
                tensor("z", ["batch", "time", cfg.z_dim], "motion latents (e.g. z_mean of another input)"),
            ],
            "outputs": [tensor("frames", ["batch", "time", *frame], f"mean of p(x_1:T | z_1:T, f): {values}")],
        },
        "usage": "swap content and motion: decoder(f_mean of a, z_mean of b); sample a latent as mean + exp(0.5 * logvar) * N(0, 1)",
        "config": cfg.to_dict(),
        "checkpoint": extra,
    }
