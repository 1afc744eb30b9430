"""Is the judge's light -> tanned (and gold greaves -> grey metal) call on reconstructions about blur?

Run:  python benchmarks/judge_blur.py

Prints, as JSON, the embedded judge's accuracy (%) per skin and pants class on the 2,664 Sprites test
sequences: as rendered, blurred (a 3x3 binomial kernel mixed in at strength 0.5 and 1.0), and
reconstructed by the embedded model; and the reconstructions' mean absolute error (0-255) over the
figure's pixels. About two minutes on 2 cores.
"""
import json
import numpy as np, torch, torch.nn.functional as F
from dsae_cli.evaluate.judge import sprites_split, load_judge, judge_probabilities
from dsae_cli.runtime import load_model_for
from dsae_cli.data.sequences import video_batch
from dsae_cli.data.sequences import to_uint8_frames

data = sprites_split("test")
x = data.x
labels = data.labels
judge = load_judge(None)
model = load_model_for(None, "video", "cpu")
model.eval()

def per_class(probs, head, k):
    y = labels[head]
    pred = probs[head].argmax(1)
    return {int(c): round(float((pred[y == c] == c).mean()) * 100, 2) for c in range(k)}

def blur(xu, a):
    t = video_batch(xu)
    B, T = t.shape[:2]
    t = t.reshape(B * T, 3, 64, 64)
    k = torch.tensor([1.0, 2.0, 1.0]); k = (k[:, None] * k[None, :]) / 16
    w = k.expand(3, 1, 3, 3).contiguous()
    b = F.conv2d(F.pad(t, (1, 1, 1, 1), mode="replicate"), w, groups=3)
    out = (1 - a) * t + a * b
    return to_uint8_frames(out.view(B, T, 3, 64, 64))

res = {}
res["real"] = {h: per_class(judge_probabilities(judge, x), h, 6) for h in ("skin", "pants")}
for a in (0.5, 1.0):
    xb = np.concatenate([blur(x[i:i + 256], a) for i in range(0, len(x), 256)])
    p = judge_probabilities(judge, xb)
    res[f"blur{a}"] = {h: per_class(p, h, 6) for h in ("skin", "pants")}
rec = []
with torch.no_grad():
    for i in range(0, len(x), 128):
        rec.append(to_uint8_frames(model.reconstruct(video_batch(x[i:i + 128]))))
rec = np.concatenate(rec)
p = judge_probabilities(judge, rec)
res["recon"] = {h: per_class(p, h, 6) for h in ("skin", "pants")}
# colour error of reconstructions on light-skin sequences, mean abs over the figure's pixels
fig = x.max(-1) > 12
err = np.abs(rec.astype(np.float32) - x.astype(np.float32)).mean(-1)
res["recon_mae_figure"] = round(float(err[fig].mean()), 2)
print(json.dumps(res, indent=1))
