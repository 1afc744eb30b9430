"""Small charts drawn with Pillow (no plotting library needed): loss curves for training runs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dsae_cli.io.files import atomic_path

COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def line_chart(series: dict[str, tuple[list, list]], title: str, log_y: bool = True, size=(720, 420)):
    """A PIL image with one line per series (x values, y values), a legend and labelled axes."""
    from PIL import Image, ImageDraw, ImageFont

    W, H = size
    left, right, top, bottom = 70, 20, 30, 40
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((left, 8), title, fill="black", font=font)
    pts = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items() if len(x)}
    pts = {k: (x[np.isfinite(y) & ((y > 0) | (not log_y))], y[np.isfinite(y) & ((y > 0) | (not log_y))]) for k, (x, y) in pts.items()}
    pts = {k: v for k, v in pts.items() if len(v[0])}
    d.rectangle([left, top, W - right, H - bottom], outline="black")
    if not pts:
        return img
    tf = (lambda v: np.log10(v)) if log_y else (lambda v: v)
    xs = np.concatenate([x for x, _ in pts.values()])
    ys = np.concatenate([tf(y) for _, y in pts.values()])
    x0, x1 = float(xs.min()), float(xs.max()) or 1.0
    y0, y1 = float(ys.min()), float(ys.max())
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y1 = y0 + 1
    px = lambda v: left + (v - x0) / (x1 - x0) * (W - left - right)  # noqa: E731
    py = lambda v: H - bottom - (v - y0) / (y1 - y0) * (H - top - bottom)  # noqa: E731
    for i in range(5):  # y ticks
        v = y0 + (y1 - y0) * i / 4
        label = f"{10**v:.4g}" if log_y else f"{v:.4g}"
        d.line([left - 4, py(v), left, py(v)], fill="black")
        d.text((4, py(v) - 6), label, fill="black", font=font)
    for i in range(5):  # x ticks
        v = x0 + (x1 - x0) * i / 4
        d.line([px(v), H - bottom, px(v), H - bottom + 4], fill="black")
        d.text((px(v) - 12, H - bottom + 8), f"{v:.0f}", fill="black", font=font)
    d.text((W // 2 - 10, H - 16), "step", fill="black", font=font)
    for i, (name, (x, y)) in enumerate(pts.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = [(px(a), py(b)) for a, b in zip(x, tf(y))]
        if len(line) > 1:
            d.line(line, fill=colour, width=2)
        else:
            d.ellipse([line[0][0] - 2, line[0][1] - 2, line[0][0] + 2, line[0][1] + 2], fill=colour)
        d.text((W - right - 150, top + 6 + 14 * i), f"-- {name}", fill=colour, font=font)
    return img


def plot_loss_curves(path: Path, history: list[dict]) -> None:
    """loss.png of a run: training loss terms and validation loss against step (log scale)."""
    series = {}
    for key in ("loss", "recon", "kl_f", "kl_z", "cycle", "val_loss"):
        rows = [(r["step"], r[key]) for r in history if key in r and r[key] is not None and not math.isnan(r[key])]
        if rows:
            series[key] = ([a for a, _ in rows], [b for _, b in rows])
    img = line_chart(series, "training curves (per sequence, nats)")
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
