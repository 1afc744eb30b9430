"""Small charts drawn with Pillow (no plotting library needed): loss curves for training runs and the
judge's class probabilities over time (``dsae evaluate sprites --plots``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dsae_cli.io.files import atomic_path

COLOURS = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def _canvas(size, margins, title: str, title_y: int):
    """A white chart ``(image, draw, font)`` of ``size``: ``title`` at the top left of the plot area,
    which lies inside ``margins`` (left, right, top, bottom) and is framed in black."""
    from PIL import Image, ImageDraw, ImageFont

    W, H = size
    left, right, top, bottom = margins
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((left, title_y), title, fill="black", font=font)
    d.rectangle([left, top, W - right, H - bottom], outline="black")
    return img, d, font


def line_chart(series: dict[str, tuple[list, list]], title: str, log_y: bool = True, size=(720, 420)):
    """A PIL image with one line per series (x values, y values), a legend and labelled axes."""
    W, H = size
    left, right, top, bottom = 70, 20, 30, 40
    img, d, font = _canvas(size, (left, right, top, bottom), title, title_y=8)
    pts = {k: (np.asarray(x, float), np.asarray(y, float)) for k, (x, y) in series.items() if len(x)}
    pts = {k: (x[np.isfinite(y) & ((y > 0) | (not log_y))], y[np.isfinite(y) & ((y > 0) | (not log_y))]) for k, (x, y) in pts.items()}
    pts = {k: v for k, v in pts.items() if len(v[0])}
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


def probability_chart(curves: np.ndarray, title: str, size=(720, 240)):
    """A PIL image: one line per row of ``curves`` (N, T) against t = 1..T, y fixed to [0, 1]."""
    W, H = size
    left, right, top, bottom = 50, 20, 26, 40
    img, d, font = _canvas(size, (left, right, top, bottom), title, title_y=6)
    T = curves.shape[1]
    px = lambda t: left + (t - 1) / max(T - 1, 1) * (W - left - right)  # noqa: E731
    py = lambda v: H - bottom - v * (H - top - bottom)  # noqa: E731
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        d.line([left - 4, py(v), left, py(v)], fill="black")
        d.text((8, py(v) - 6), f"{v:.2f}", fill="black", font=font)
    for t in range(1, T + 1):
        d.line([px(t), H - bottom, px(t), H - bottom + 4], fill="black")
        d.text((px(t) - 3, H - bottom + 8), str(t), fill="black", font=font)
    d.text((W // 2 - 60, H - 14), "frames t (prefix x_1..t); one line per sequence", fill="black", font=font)
    for i, row in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(px(t + 1), py(float(v))) for t, v in enumerate(row)]
        if len(pts) > 1:
            d.line(pts, fill=colour, width=2)
        for x0, y0 in pts:
            d.ellipse([x0 - 2, y0 - 2, x0 + 2, y0 + 2], fill=colour)
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
