"""Scoring a video DSAE on the Sprites test set with a judge classifier, as the papers do.

Run it as ``dsae evaluate sprites [--model M] [--judge J] [--repeats 3] [--json] [--plots DIR]``.

The judge (``models/judge.py``, trained by ``dsae judge train``) gives class probabilities
p(y | x) for the action (9 classes) and the four appearance attributes (6 each). Every test
sequence x is encoded once to the posterior means (f, z_1:T); then

* **action test** (S3VAE / C-DSVAE protocol, ``shared/data/lpc/README.md`` section 8): keep
  z_1:T, draw f from a prior, decode to x'; the judge's action on x' is compared with the ground
  truth of x (``acc``), and its probabilities give the Inception Score ``is``, the conditional
  entropy ``h_yx`` and the marginal entropy ``h_y`` on a class-balanced subset. It runs under both
  priors, in separate keys: ``action_standard`` (f ~ N(0, I), the papers' protocol, the only one to
  compare with published rows) and ``action_fitted`` (f ~ the p(f) fitted to the training
  posterior; ``None`` for a model without one);
* **static test** (the mirror image): keep f, draw z_1:T from the learned prior, decode; accuracy of
  the four appearance heads against x's labels (``static_acc``; ``all``: all four right at once);
* **swap**: decode(f of a, z_1:T of b) on fixed pairs (each test sequence a with a seeded random
  partner b of another character and another action); appearance judged against a's labels,
  action against b's (``swap``);
* **the DSAE paper's table** (Li & Mandt 2018, Sprites, per attribute): ``disagreement``,
  ``kl_recon`` and ``kl_random``; see :func:`paper_table_scores` for the definitions used.

Each figure is the mean and (population) standard deviation over ``repeats`` passes with fresh
prior samples; the swap, reconstruction and real-data figures use no sampling, so their std is 0.
Rates (accuracy, disagreement) are fractions in [0, 1]; the Markdown report prints them as %.
The whole test split is used (2664 sequences, nothing dropped; the C-DSVAE code drops the last
incomplete batch of 128 and so scores 2560).

The metric functions at the top are plain numpy, so they can be tested on hand-made inputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dsae_cli.errors import DsaeError

EPS = 1e-16  # inside every log, as in the released S3VAE / C-DSVAE code
HEADS = ("action", "skin", "pants", "top", "hair")
ATTRIBUTES = HEADS[1:]
SWAP_SEED = 2018  # the swap pairs depend on this and on the test set only, never on --seed


# --------------------------------------------------------------------------------------------
# metrics (numpy only)


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of correct predictions; ``pred`` is class ids (N,) or probabilities (N, K)."""
    pred = np.asarray(pred)
    if pred.ndim == 2:
        pred = pred.argmax(-1)
    return float(np.mean(pred == np.asarray(labels)))


def entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each categorical distribution along the last axis."""
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(p + EPS)).sum(-1)


def kl_categorical(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) (nats) of categorical distributions along the last axis (broadcasts).

    Both are renormalised in float64 first: softmax outputs in float32 sum to 1 only up to ~1e-7,
    enough to make the KL of two near-equal distributions come out slightly negative.
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(-1, keepdims=True)
    q = q / q.sum(-1, keepdims=True)
    return (p * (np.log(p + EPS) - np.log(q + EPS))).sum(-1)


def inception_score(probs: np.ndarray) -> float:
    """IS = exp( mean_x KL(p(y|x) || p(y)) ), p(y) the mean of p(y|x) over the samples; 1 .. K."""
    probs = np.asarray(probs, dtype=np.float64)
    return float(np.exp(kl_categorical(probs, probs.mean(0, keepdims=True)).mean()))


def conditional_entropy(probs: np.ndarray) -> float:
    """H(y|x) = mean_x H(p(y|x)): low when the judge is sure about each sample."""
    return float(entropy(probs).mean())


def marginal_entropy(probs: np.ndarray) -> float:
    """H(y) = H(mean_x p(y|x)): ln K when the samples cover all classes evenly."""
    return float(entropy(np.asarray(probs, dtype=np.float64).mean(0)))


def class_balanced_indices(labels: np.ndarray) -> np.ndarray:
    """For every class that occurs in ``labels``, the indices of its first n samples, n the smallest
    per-class count (the protocol's balanced subset); sorted. Classes that never occur are ignored."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) == 0:
        return np.zeros(0, dtype=np.int64)
    n = counts.min()
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:n] for c in classes]))


def disagreement(p: np.ndarray, q: np.ndarray) -> float:
    """Fraction of rows whose most likely class differs between ``p`` and ``q`` (probabilities or ids)."""
    p, q = np.asarray(p), np.asarray(q)
    a = p.argmax(-1) if p.ndim == 2 else p
    b = q.argmax(-1) if q.ndim == 2 else q
    return float(np.mean(a != b))


def generation_scores(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The protocol's four numbers for judged generations: Acc on all of them; IS, H(y|x), H(y) on the
    class-balanced subset (by ground-truth class)."""
    keep = class_balanced_indices(labels)
    sub = np.asarray(probs)[keep]
    return {
        "acc": accuracy(probs, labels),
        "is": inception_score(sub),
        "h_yx": conditional_entropy(sub),
        "h_y": marginal_entropy(sub),
    }


def joint_accuracy(probs: dict[str, np.ndarray], labels: dict[str, np.ndarray], heads=ATTRIBUTES) -> float:
    """Fraction of samples with every one of ``heads`` right at once."""
    ok = np.ones(len(labels[heads[0]]), dtype=bool)
    for h in heads:
        ok &= np.asarray(probs[h]).argmax(-1) == np.asarray(labels[h])
    return float(ok.mean())


def paper_table_scores(p_data: dict, p_recon: dict, p_gen_f: dict, p_gen_z: dict) -> dict:
    """The DSAE paper's per-attribute disentanglement table (Li & Mandt, ICML 2018, Sprites).

    All four arguments are the judge's probabilities ``{head: (N, K)}`` on: the test data x, their
    reconstructions decode(f, z_1:T), the generations with f drawn from p(f) and z_1:T kept
    (``p_gen_f``) and those with f kept and z_1:T drawn from the learned prior (``p_gen_z``).

    The paper's exact formulas could not be re-checked here (no copy of its text was reachable);
    this is the reading implemented, stated so that it can be compared:

    * the latent "in charge" of an appearance attribute (skin, pants, top, hair) is f, that of the
      action is z_1:T; the "kept" generation keeps that latent and resamples the other one
      (appearance: ``p_gen_z``; action: ``p_gen_f``), the "random" generation resamples it
      (appearance: ``p_gen_f``; action: ``p_gen_z``);
    * ``disagreement``: fraction of test sequences whose judged class on the kept generation
      differs from the judged class on x (0 is perfect: the latent in charge carries the attribute);
    * ``kl_recon``: mean KL(p(y|x) || p(y|reconstruction)), the reference for how much a
      reconstruction alone moves the judge (small is good);
    * ``kl_random``: mean KL(p(y|x) || p(y|random generation)): how much the attribute changes when
      its latent is resampled (large is good: the latent controls the attribute);
    * ``kl_kept``: mean KL(p(y|x) || p(y|kept generation)), the KL beside the disagreement (small is
      good), reported too so that either reading of the paper's columns can be taken from the table.
    """
    out = {}
    for head in HEADS:
        kept, random = (p_gen_f, p_gen_z) if head == "action" else (p_gen_z, p_gen_f)
        out[head] = {
            "disagreement": disagreement(p_data[head], kept[head]),
            "kl_recon": float(kl_categorical(p_data[head], p_recon[head]).mean()),
            "kl_random": float(kl_categorical(p_data[head], random[head]).mean()),
            "kl_kept": float(kl_categorical(p_data[head], kept[head]).mean()),
        }
    return out


def confusion(probs: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> list[list[int]]:
    """Counts [true class][judged class] of the judge's argmax decisions."""
    labels = np.asarray(labels, dtype=np.int64)
    k = n_classes or max(int(labels.max()) + 1, probs.shape[1])
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (labels, probs.argmax(axis=1)), 1)
    return cm.tolist()


def top_confusions(cm: list[list[int]], names: tuple[str, ...] | None = None, n: int = 3) -> list[dict]:
    """The n most frequent off-diagonal cells of a confusion matrix, as share of the true class."""
    cm_ = np.asarray(cm)
    cells = [(int(cm_[i, j]), i, j) for i in range(len(cm_)) for j in range(len(cm_)) if i != j and cm_[i, j] > 0]
    cells.sort(reverse=True)
    label = (lambda i: names[i]) if names else str
    return [
        {"true": label(i), "judged": label(j), "count": c, "share": round(c / max(1, int(cm_[i].sum())), 4)}
        for c, i, j in cells[:n]
    ]


def mean_std(values) -> dict[str, float]:
    """``{"mean", "std"}`` of a list of numbers (population std; 0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std())}


def _summarise(rows: list):
    """Turn a list of equally nested dicts of numbers (one per repeat) into the same nesting of mean_std."""
    first = rows[0]
    if isinstance(first, dict):
        return {k: _summarise([r[k] for r in rows]) for k in first}
    return mean_std(rows)


# --------------------------------------------------------------------------------------------
# pairs for the swap test


def swap_pairs(char_id: np.ndarray, action: np.ndarray, seed: int = SWAP_SEED) -> np.ndarray:
    """For each sequence a, a partner b with another character and another action, drawn uniformly
    with a fixed seed (the same pairs on every run for the same test set)."""
    char_id, action = np.asarray(char_id), np.asarray(action)
    n = len(char_id)
    if n == 0:
        raise DsaeError("the swap test needs test sequences; none were given")
    # partners of i = all - same character - same action + (same character and same action)
    _, ci, char_count = np.unique(char_id, return_inverse=True, return_counts=True)
    _, ai, action_count = np.unique(action, return_inverse=True, return_counts=True)
    _, both, both_count = np.unique(ci * (ai.max() + 1) + ai, return_inverse=True, return_counts=True)
    partners = n - char_count[ci] - action_count[ai] + both_count[both]
    if (partners < 1).any():
        raise DsaeError("the swap test needs sequences of at least two characters and two actions; evaluate more test sequences")
    rng = np.random.RandomState(seed)
    partner = rng.randint(n, size=n)
    bad = (char_id[partner] == char_id) | (action[partner] == action)
    while bad.any():
        partner[bad] = rng.randint(n, size=int(bad.sum()))
        bad = (char_id[partner] == char_id) | (action[partner] == action)
    return partner


# --------------------------------------------------------------------------------------------
# the driver


def _check_pair(model, judge, data) -> None:
    cfg, jc = model.config, judge.config
    if cfg.modality != "video":
        raise DsaeError(f"the Sprites evaluation needs a video model; this one is a {cfg.modality} model")
    shape = data.x.shape[2:]  # (H, W, C)
    if (cfg.frame_size, cfg.frame_size, cfg.channels) != shape:
        raise DsaeError(
            f"the model makes {cfg.frame_size}x{cfg.frame_size} frames but Sprites frames are {shape[1]}x{shape[0]}; "
            "pass a model trained on Sprites"
        )
    if (jc.frame_size, jc.frame_size, jc.channels) != shape:
        raise DsaeError(f"the judge reads {jc.frame_size}x{jc.frame_size} frames but Sprites frames are {shape[1]}x{shape[0]}; pass a Sprites judge")


def _prepare(model, judge, data, repeats: int) -> dict[str, np.ndarray]:
    """Check the arguments of an evaluation, put both networks in eval mode, return the labels."""
    if repeats < 1:
        raise DsaeError("--repeats must be at least 1")
    _check_pair(model, judge, data)
    model.eval()
    judge.eval()
    return {k: np.asarray(data.labels[k]) for k in HEADS}


def _append(store: dict, probs: dict) -> None:
    for k, v in probs.items():
        store.setdefault(k, []).append(v.float().cpu().numpy())


def _cat(store: dict) -> dict[str, np.ndarray]:
    return {k: np.concatenate(v) for k, v in store.items()}


def evaluate_sprites(model, judge, data, repeats: int = 3, batch_size: int = 256, seed: int = 0, device: str = "cpu", progress=None) -> dict:
    """Every figure of the Sprites evaluation for ``model`` judged by ``judge`` on ``data`` (test
    SequenceData with labels). All model and judge calls are batched; nothing is written.

    ``progress(done, total)`` is called after each batch of work. Returns the JSON-ready dict that
    ``dsae evaluate sprites --json`` prints. Reproducible for a given seed and batch size.
    """
    import torch

    from dsae_cli.data.sequences import video_batch

    labels = _prepare(model, judge, data, repeats)
    fitted = model.config.f_prior == "fitted"
    start = time.perf_counter()
    n, T = len(data), data.x.shape[1]
    batches = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    total, done = len(batches) * (2 + repeats), 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    with torch.no_grad():
        # encode every test sequence once (posterior means) and judge the real data
        f_parts, z_parts, p_data = [], [], {}
        for sl in batches:
            x = video_batch(data.x[sl], device)
            post = model.encode(x)
            f_parts.append(post.f)
            z_parts.append(post.z)
            _append(p_data, judge.probabilities(x))
            tick()
        f, z = torch.cat(f_parts), torch.cat(z_parts)
        p_data = _cat(p_data)

        # reconstructions and swaps need no sampling: once
        partner = torch.from_numpy(swap_pairs(data.labels["char_id"], labels["action"])).to(f.device)
        p_recon, p_swap = {}, {}
        for sl in batches:
            _append(p_recon, judge.probabilities(model.decode(f[sl], z[sl])))
            _append(p_swap, judge.probabilities(model.decode(f[sl], z[partner[sl]])))
            tick()
        p_recon, p_swap = _cat(p_recon), _cat(p_swap)

        rows = []
        gen = torch.Generator(device=f.device)
        gen.manual_seed(int(seed))
        for _ in range(repeats):
            p_gen_f, p_fit_f, p_gen_z = {}, {}, {}
            for sl in batches:
                b = sl.stop - sl.start
                _append(p_gen_f, judge.probabilities(model.decode(model.sample_f(b, generator=gen, standard=True), z[sl])))
                if fitted:
                    _append(p_fit_f, judge.probabilities(model.decode(model.sample_f(b, generator=gen), z[sl])))
                _append(p_gen_z, judge.probabilities(model.decode(f[sl], model.sample_z(b, steps=T, generator=gen))))
                tick()
            p_gen_f, p_gen_z = _cat(p_gen_f), _cat(p_gen_z)
            row = {"action_standard": generation_scores(p_gen_f["action"], labels["action"])}
            if fitted:
                row["action_fitted"] = generation_scores(_cat(p_fit_f)["action"], labels["action"])
            row["static_acc"] = {**{a: accuracy(p_gen_z[a], labels[a]) for a in ATTRIBUTES}, "all": joint_accuracy(p_gen_z, labels)}
            row["paper_table"] = paper_table_scores(p_data, p_recon, p_gen_f, p_gen_z)
            rows.append(row)

    partner_np = partner.cpu().numpy()
    swap = {a: accuracy(p_swap[a], labels[a]) for a in ATTRIBUTES}
    swap["all"] = joint_accuracy(p_swap, labels)
    swap["action"] = accuracy(p_swap["action"], labels["action"][partner_np])
    summary = _summarise(rows)
    result = {
        "split": data.source.split(":")[-1],
        "action_standard": summary["action_standard"],
        "action_fitted": summary.get("action_fitted"),
        "static_acc": summary["static_acc"],
        "swap": {k: mean_std([v]) for k, v in swap.items()},
        "paper_table": summary["paper_table"],
        "judge_acc_data": {h: mean_std([accuracy(p_data[h], labels[h])]) for h in HEADS},
        "recon_acc": {h: mean_std([accuracy(p_recon[h], labels[h])]) for h in HEADS},
        # where swaps and reconstructions lose the look: [true][judged] counts per attribute
        "confusion": {
            "swap": {a: confusion(p_swap[a], labels[a]) for a in ATTRIBUTES},
            "recon": {a: confusion(p_recon[a], labels[a]) for a in ATTRIBUTES},
        },
        "model_id": getattr(model, "model_id", None),
        "judge_id": getattr(judge, "judge_id", None),
        "f_prior": model.config.f_prior,
        "repeats": int(repeats),
        "n_test": int(n),
        "seed": int(seed),
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    return result


# --------------------------------------------------------------------------------------------
# report


def _pct(ms: dict) -> str:
    return f"{100 * ms['mean']:.2f} ± {100 * ms['std']:.2f} %"


def _num(ms: dict, digits: int = 3) -> str:
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def markdown_report(r: dict) -> str:
    """The result of :func:`evaluate_sprites` as Markdown tables (mean ± std over the repeats)."""
    lines = [
        "## Sprites evaluation",
        "",
        f"model `{r['model_id']}`, judge `{r['judge_id']}`; {r['n_test']} test sequences, "
        f"{r['repeats']} repeats with fresh prior samples (mean ± std); {r['elapsed_s']:.0f} s; "
        f"split {r.get('split', 'test')}",
        "",
        "### Action test (z_1:T kept, f drawn from a prior)",
        "",
        "| p(f) | Acc | IS | H(y\\|x) | H(y) |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {_pct(a['acc'])} | {_num(a['is'])} | {_num(a['h_yx'])} | {_num(a['h_y'])} |"
            for label, a in (("N(0, I) (the papers' protocol)", r["action_standard"]), ("fitted p(f) (this project's)", r.get("action_fitted")))
            if a is not None
        ),
        "",
        "### Static test (f kept, z_1:T from the learned prior): appearance accuracy",
        "",
        "| skin | pants | top | hair | all four |",
        "|---|---|---|---|---|",
        "| " + " | ".join(_pct(r["static_acc"][k]) for k in (*ATTRIBUTES, "all")) + " |",
        "",
        "### Swap (f of a, z_1:T of b; fixed pairs): appearance of a kept, action of b kept",
        "",
        "| skin | pants | top | hair | all four | action |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join(_pct(r["swap"][k]) for k in (*ATTRIBUTES, "all", "action")) + " |",
        "",
        "### DSAE paper table (Li & Mandt 2018): judge on data vs generations",
        "",
        "| attribute | disagreement | KL-recon | KL-random | KL-kept |",
        "|---|---|---|---|---|",
    ]
    for head in (*ATTRIBUTES, "action"):
        row = r["paper_table"][head]
        lines.append(f"| {head} | {_pct(row['disagreement'])} | {_num(row['kl_recon'])} | {_num(row['kl_random'])} | {_num(row['kl_kept'])} |")
    lines += [
        "",
        "### Judge accuracy on the real test data and on reconstructions",
        "",
        "| | " + " | ".join(HEADS) + " |",
        "|---|" + "---|" * len(HEADS),
        "| data | " + " | ".join(f"{100 * r['judge_acc_data'][h]['mean']:.2f} %" for h in HEADS) + " |",
        "| reconstruction | " + " | ".join(f"{100 * r['recon_acc'][h]['mean']:.2f} %" for h in HEADS) + " |",
    ]
    if "confusion" in r:
        names = class_names()
        lines += ["", "### What swaps lose: the most frequent judge confusions (true -> judged, share of the true class)", ""]
        lines += ["| attribute | swap | reconstruction |", "|---|---|---|"]
        for a in ATTRIBUTES:
            cells = []
            for kind in ("swap", "recon"):
                top = top_confusions(r["confusion"][kind][a], names.get(a))
                cells.append(", ".join(f"{c['true']} -> {c['judged']} {100 * c['share']:.1f} % ({c['count']})" for c in top) or "none")
            lines.append(f"| {a} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# plots: the judge's class probabilities over time


def class_names() -> dict[str, tuple[str, ...]]:
    from dsae_cli.data import sprites

    return {"action": sprites.ACTION_NAMES, **{a: sprites.LOOKS[a] for a in ATTRIBUTES}}


def prefix_probabilities(judge, x) -> dict[str, np.ndarray]:
    """The judge's probabilities on growing prefixes x_1..t, ``{head: (T, N, K)}``.

    The judge classifies whole sequences, so "probability at time t" is its prediction from the
    first t frames; at t = T it is the ordinary prediction.
    """
    import torch

    out: dict[str, list] = {}
    with torch.no_grad():
        for t in range(1, x.shape[1] + 1):
            for k, v in judge.probabilities(x[:, :t]).items():
                out.setdefault(k, []).append(v.float().cpu().numpy())
    return {k: np.stack(v) for k, v in out.items()}


def probability_chart(curves: np.ndarray, title: str, size=(720, 240)):
    """A PIL image: one line per row of ``curves`` (N, T) against t = 1..T, y fixed to [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    from dsae_cli.io.plots import COLOURS

    W, H = size
    left, right, top, bottom = 50, 20, 26, 40
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    d.text((left, 6), title, fill="black", font=font)
    d.rectangle([left, top, W - right, H - bottom], outline="black")
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


def trajectory_plots(model, judge, out_dir: Path, n: int = 8, seed: int = 0, device: str = "cpu") -> list[Path]:
    """PNG figures of the judge's class probabilities over time for generated sequences.

    Two sets of ``n`` sequences are generated: one with a shared f ~ p(f) and n z_1:T from the learned
    prior, one with a shared z_1:T and n f ~ p(f). For each set and each head the chart shows, for
    every sequence, the probability of the class most of the n sequences are judged to be (at
    t = T) given the prefix x_1..t. With good disentanglement the shared-f charts are flat near 1
    for the appearance heads and the shared-z charts for the action. Writes
    ``shared_f.png``/``shared_z.png`` (charts) and ``shared_f_frames.png``/``shared_z_frames.png``.
    """
    import torch
    from PIL import Image

    from dsae_cli.io import media

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = class_names()
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    T = model.config.seq_len
    with torch.no_grad():
        f1 = model.sample_f(1, generator=gen).expand(n, -1)
        zs = model.sample_z(n, steps=T, generator=gen)
        z1 = model.sample_z(1, steps=T, generator=gen).expand(n, -1, -1)
        fs = model.sample_f(n, generator=gen)
        sets = {"shared_f": model.decode(f1, zs), "shared_z": model.decode(fs, z1)}
    written = []
    for name, x in sets.items():
        probs = prefix_probabilities(judge, x)
        charts = []
        for head in HEADS:
            p = probs[head]  # (T, n, K)
            final = p[-1].argmax(-1)
            c = int(np.bincount(final, minlength=p.shape[-1]).argmax())
            agree = int((final == c).sum())
            title = f"{name.replace('_', ' ')}: {head}, p({names[head][c]} | x_1..t); {agree}/{n} sequences judged {names[head][c]}"
            charts.append(probability_chart(p[:, :, c].T, title))
        sheet = Image.new("RGB", (charts[0].width, sum(c.height for c in charts)), "white")
        for i, c in enumerate(charts):
            sheet.paste(c, (0, i * c.height))
        path = out_dir / f"{name}.png"
        media.write_png(path, np.asarray(sheet))
        frames = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
        frames_path = out_dir / f"{name}_frames.png"
        media.write_png(frames_path, media.make_grid(list(frames), labels=[str(i) for i in range(n)]))
        written += [path, frames_path]
    return written


# --------------------------------------------------------------------------------------------
# reconstruction and prediction (the paper's comparison of stochastic and deterministic dynamics)


def evaluate_prediction(model, judge, data, context: int = 4, repeats: int = 3, batch_size: int = 256, seed: int = 0, device: str = "cpu") -> dict:
    """Reconstruction and prediction quality on ``data`` (test SequenceData with labels).

    * ``recon_mse``: mean squared error per pixel (values in [0, 1]) of decode(posterior means);
    * ``pred_mse``: the same on frames ``context+1 .. T`` of ``model.predict`` (f and z_1:K encoded
      from the first ``context`` frames, the rest rolled out from the learned prior, or for the
      deterministic baselines the LSTM driven by the encoded z), mean over ``repeats`` roll-outs;
    * ``pred_acc``: the judge's accuracy on the predicted sequences (context frames + predicted
      frames) for the action and the four attributes (does the prediction go on with the same
      motion, in the same look?); mean and std over the repeats.
    """
    import torch

    from dsae_cli.data.sequences import video_batch

    T = data.x.shape[1]
    if not 1 <= context < T:
        raise DsaeError(f"--context must be between 1 and {T - 1} for {T}-frame sequences, not {context}")
    labels = _prepare(model, judge, data, repeats)
    fitted = model.config.f_prior == "fitted"
    start = time.perf_counter()
    n = len(data)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    sq_recon, sq_pred = 0.0, [0.0] * repeats
    p_pred = [dict() for _ in range(repeats)]
    with torch.no_grad():
        for i in range(0, n, batch_size):
            x = video_batch(data.x[i : i + batch_size], device)
            sq_recon += float(((model.reconstruct(x) - x) ** 2).mean(dim=(1, 2, 3, 4)).sum())
            for r in range(repeats):
                pred = model.predict(x, context, T - context, generator=gen)
                sq_pred[r] += float(((pred[:, context:] - x[:, context:]) ** 2).mean(dim=(1, 2, 3, 4)).sum())
                _append(p_pred[r], judge.probabilities(pred))
    acc = {h: mean_std([accuracy(_cat(p)[h], labels[h]) for p in p_pred]) for h in HEADS}
    return {
        "dynamics": model.config.dynamics,
        "context": int(context),
        "recon_mse": float(sq_recon / n),
        "pred_mse": mean_std([s / n for s in sq_pred]),
        "pred_acc": acc,
        "model_id": getattr(model, "model_id", None),
        "repeats": int(repeats),
        "n_test": int(n),
        "elapsed_s": round(time.perf_counter() - start, 1),
    }


def prediction_report(rows: list[tuple[str, dict]]) -> str:
    """Results of :func:`evaluate_prediction` for several models as one Markdown table."""
    lines = [
        "| model | dynamics | recon MSE | prediction MSE | action kept | look kept: skin, pants, top, hair (%) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        looks = ", ".join(f"{100 * r['pred_acc'][a]['mean']:.1f}" for a in ATTRIBUTES)
        lines.append(
            f"| {name} | {r['dynamics']} | {r['recon_mse']:.5f} | {r['pred_mse']['mean']:.5f} ± {r['pred_mse']['std']:.5f} "
            f"| {_pct(r['pred_acc']['action'])} | {looks} |"
        )
    return "\n".join(lines)
