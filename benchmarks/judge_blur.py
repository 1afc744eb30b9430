"""Is the judge's light -> tanned (and gold greaves -> grey metal) call on reconstructions about blur?

Run:  python benchmarks/judge_blur.py [--model RUN_DIR] [--judge JUDGE_DIR]

Prints, as JSON, the judge's accuracy (%) per skin and pants class on the 2,664 Sprites test
sequences: as rendered, blurred (a 3x3 binomial kernel mixed in at strength 0.5 and 1.0), and
reconstructed by the model (default: the embedded one); and the reconstructions' mean absolute error
(0-255) over the figure's pixels. About two minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dsae_cli.data.sequences import to_uint8_frames, video_batch
from dsae_cli.data.sprites import sprites_split
from dsae_cli.evaluate.judge import judge_probabilities, load_judge
from dsae_cli.runtime import load_model_for


def per_class(probs, labels, head, k):
    y = labels[head]
    pred = probs[head].argmax(1)
    return {int(c): round(float((pred[y == c] == c).mean()) * 100, 2) for c in range(k)}


def blur(xu, a):
    t = video_batch(xu)
    B, T = t.shape[:2]
    t = t.reshape(B * T, 3, 64, 64)
    k = torch.tensor([1.0, 2.0, 1.0])
    k = (k[:, None] * k[None, :]) / 16
    w = k.expand(3, 1, 3, 3).contiguous()
    b = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), w, groups=3)
    out = (1 - a) * t + a * b
    return to_uint8_frames(out.view(B, T, 3, 64, 64))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="video model (run folder, .safetensors or an embedded name; default: the embedded model)")
    ap.add_argument("--judge", type=Path, default=None, help="judge folder (default: the embedded judge)")
    args = ap.parse_args()

    data = sprites_split("test")
    x = data.x
    labels = data.labels
    judge = load_judge(args.judge)
    model = load_model_for(args.model, "video", "cpu")
    model.eval()

    res = {}
    res["real"] = {h: per_class(judge_probabilities(judge, x), labels, h, 6) for h in ("skin", "pants")}
    for a in (0.5, 1.0):
        xb = np.concatenate([blur(x[i : i + 256], a) for i in range(0, len(x), 256)])
        p = judge_probabilities(judge, xb)
        res[f"blur{a}"] = {h: per_class(p, labels, h, 6) for h in ("skin", "pants")}
    rec = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            rec.append(to_uint8_frames(model.reconstruct(video_batch(x[i : i + 128]))))
    rec = np.concatenate(rec)
    p = judge_probabilities(judge, rec)
    res["recon"] = {h: per_class(p, labels, h, 6) for h in ("skin", "pants")}
    # colour error of the reconstructions, mean abs over the figure's pixels
    fig = x.max(-1) > 12
    err = np.abs(rec.astype(np.float32) - x.astype(np.float32)).mean(-1)
    res["recon_mae_figure"] = round(float(err[fig].mean()), 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
