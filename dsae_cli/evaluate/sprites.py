"""Scoring a video DSAE on a benchmark with known factors (Sprites, Moving shapes) with a judge
classifier, as the papers do on Sprites.

Run it as ``dsae evaluate sprites [--model M] [--judge J] [--repeats 3] [--json] [--plots DIR]`` or
``dsae evaluate shapes --model M [--judge J] ...``.

The judge (``models/judge.py``, trained by ``dsae judge train [--data shapes]``) gives class
probabilities p(y | x) for the action (the motion: Sprites 9 classes, Moving shapes 8 directions)
and the benchmark's content attributes (Sprites: skin, pants, top, hair; Moving shapes: shape,
colour, background; 6 each), its heads, which must be the data's labels. Every test sequence x is
encoded once to the posterior means (f, z_1:T); then

* **action test** (S3VAE / C-DSVAE protocol, ``shared/data/lpc/README.md`` section 8): keep
  z_1:T, draw f from a prior, decode to x'; the judge's action on x' is compared with the ground
  truth of x (``acc``), and its probabilities give the Inception Score ``is``, the conditional
  entropy ``h_yx`` and the marginal entropy ``h_y`` on a class-balanced subset. It runs under both
  priors, in separate keys: ``action_standard`` (f ~ N(0, I), the papers' protocol, the only one to
  compare with published rows) and ``action_fitted`` (f ~ the p(f) fitted to the training
  posterior; ``None`` for a model without one);
* **static test** (the mirror image, "generation keeps content"): keep f, draw z_1:T from the
  learned prior, decode; accuracy of the content heads against x's labels (``static_acc``;
  ``all``: all of them right at once); and how varied the drawn motions are for one content
  (``motion_samples``: the action entropy ``h_y`` over 30 roll-outs for each of 100 f's, and
  ``h_yx``, see :func:`motion_samples`);
* **swap**: decode(f of a, z_1:T of b) on fixed pairs (each test sequence a with a seeded random
  partner b of another content, i.e. ``char_id`` or ``content_id``, and another action); content
  judged against a's labels (``all``: every attribute at once), action against b's (``swap``);
* **the DSAE paper's table** (Li & Mandt 2018, Sprites, per attribute): ``disagreement``,
  ``kl_recon`` and ``kl_random``; see :func:`paper_table_scores` for the definitions used (on
  Moving shapes, the same figures for its heads).

Each figure is the mean and (population) standard deviation over ``repeats`` passes with fresh
prior samples; the reconstruction and real-data figures use no sampling, so their std is 0, and
the swap figures' std is over ``swap_rounds`` sets of pairs (0 for the default single set).
Rates (accuracy, disagreement) are fractions in [0, 1]; the Markdown report prints them as %.
The whole split is used (Sprites test: 2664 sequences, nothing dropped; the C-DSVAE code drops the
last incomplete batch of 128 and so scores 2560).

The numbers themselves are in :mod:`dsae_cli.evaluate.metrics` (plain numpy), the Markdown
report and the probability plots in :mod:`dsae_cli.evaluate.report`.
"""

from __future__ import annotations

import time

import numpy as np

from dsae_cli.errors import DsaeError
from dsae_cli.evaluate.benchmarks import GROUP_LABELS, benchmark_of, group_labels
from dsae_cli.evaluate.metrics import (
    conditional_entropy, marginal_entropy, accuracy, confusion, generation_scores, joint_accuracy, mean_std, paper_table_scores, summarise, swap_pairs, SWAP_SEED,
)  # fmt: skip


# --------------------------------------------------------------------------------------------
# the driver


def _check_pair(model, judge, data) -> None:
    cfg, jc = model.config, judge.config
    bench = benchmark_of(data)
    title = bench.title if bench else "the data's"
    if cfg.modality != "video":
        raise DsaeError(f"the {title} evaluation needs a video model; this one is a {cfg.modality} model")
    shape = data.x.shape[2:]  # (H, W, C)
    if (cfg.frame_size, cfg.frame_size, cfg.channels) != shape:
        raise DsaeError(
            f"the model makes {cfg.frame_size}x{cfg.frame_size} frames but {title} frames are {shape[1]}x{shape[0]}; "
            f"pass a model trained on {title}"
        )
    if (jc.frame_size, jc.frame_size, jc.channels) != shape:
        raise DsaeError(f"the judge reads {jc.frame_size}x{jc.frame_size} frames but {title} frames are {shape[1]}x{shape[0]}; pass a {title} judge")
    check_heads(judge, data)


def check_heads(judge, data) -> None:
    """Refuse (one line) a judge whose heads are not the data's labels: the action and the same content attributes."""
    jc = judge.config
    bench = benchmark_of(data)
    attributes = [k for k in data.labels if k != "action" and k not in GROUP_LABELS]
    if "action" not in data.labels or sorted(jc.attributes) != sorted(attributes):
        labelled = ", ".join(["action"] * ("action" in data.labels) + attributes) or "not labelled"
        fix = f"`dsae judge train --data {bench.name} --out DIR`, then --judge DIR" if bench else "`dsae judge train --data NAME`"
        where = f"the {bench.title} sequences are" if bench else "the sequences are"
        raise DsaeError(f"the judge scores {', '.join(jc.heads)} but {where} labelled {labelled}; pass a judge trained on them ({fix})")
    for head, k in jc.classes.items():
        top = int(np.max(data.labels[head])) if len(data) else -1
        if top >= k:
            raise DsaeError(f"the judge's {head} head has {k} classes but the data's {head} labels go up to {top}; pass a judge trained on this data")


def _prepare(model, judge, data, repeats: int) -> dict[str, np.ndarray]:
    """Check the arguments of an evaluation, put both networks in eval mode, return the labels of the judge's heads."""
    if repeats < 1:
        raise DsaeError("--repeats must be at least 1")
    _check_pair(model, judge, data)
    model.eval()
    judge.eval()
    return {k: np.asarray(data.labels[k]) for k in judge.config.heads}


def _append(store: dict, probs: dict) -> None:
    for k, v in probs.items():
        store.setdefault(k, []).append(v.float().cpu().numpy())


def _cat(store: dict) -> dict[str, np.ndarray]:
    return {k: np.concatenate(v) for k, v in store.items()}


def evaluate_benchmark(
    model, judge, data, repeats: int = 3, batch_size: int = 256, seed: int = 0, device: str = "cpu", progress=None, swap_rounds: int = 1,
) -> dict:  # fmt: skip
    """Every figure of the judged evaluation for ``model`` judged by ``judge`` on ``data`` (a split
    of Sprites or Moving shapes: SequenceData labelled with the judge's heads and a content id). All
    model and judge calls are batched; nothing is written.

    ``swap_rounds``: the swap test on this many sets of pairs (each sequence with a new partner in
    each; the first set is the one a single round uses), its figures the mean and std over the sets.

    ``progress(done, total)`` is called after each batch of work. Returns the JSON-ready dict that
    ``dsae evaluate sprites --json`` (or ``shapes``) prints. Reproducible for a given seed and batch size.
    """
    import torch

    from dsae_cli.data.sequences import video_batch

    labels = _prepare(model, judge, data, repeats)
    attributes = judge.config.attributes
    bench = benchmark_of(data)
    fitted = model.config.f_prior == "fitted"
    start = time.perf_counter()
    n, T = len(data), data.x.shape[1]
    batches = [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
    total, done = len(batches) * (1 + swap_rounds + repeats), 0

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
        partners = [swap_pairs(group_labels(data), labels["action"], seed=SWAP_SEED + r) for r in range(swap_rounds)]
        p_recon, p_swaps = {}, []
        for r, pairs in enumerate(partners):
            partner = torch.from_numpy(pairs).to(f.device)
            p_swap = {}
            for sl in batches:
                if r == 0:
                    _append(p_recon, judge.probabilities(model.decode(f[sl], z[sl])))
                _append(p_swap, judge.probabilities(model.decode(f[sl], z[partner[sl]])))
                tick()
            p_swaps.append(_cat(p_swap))
        p_recon = _cat(p_recon)

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
            row["static_acc"] = {**{a: accuracy(p_gen_z[a], labels[a]) for a in attributes}, "all": joint_accuracy(p_gen_z, labels, attributes)}
            row["paper_table"] = paper_table_scores(p_data, p_recon, p_gen_f, p_gen_z)
            rows.append(row)

        motion = motion_samples(model, judge, f, T, generator=gen, batch_size=batch_size)

    swaps = []
    for p_swap, pairs in zip(p_swaps, partners):
        swap = {a: accuracy(p_swap[a], labels[a]) for a in attributes}
        swap["all"] = joint_accuracy(p_swap, labels, attributes)
        swap["action"] = accuracy(p_swap["action"], labels["action"][pairs])
        swaps.append(swap)
    summary = summarise(rows)
    result = {
        "split": data.source.split(":")[-1],
        "action_standard": summary["action_standard"],
        "action_fitted": summary.get("action_fitted"),
        "static_acc": summary["static_acc"],
        "motion_samples": motion,
        "swap": {k: mean_std([sw[k] for sw in swaps]) for k in swaps[0]},
        "paper_table": summary["paper_table"],
        "judge_acc_data": {h: mean_std([accuracy(p_data[h], labels[h])]) for h in labels},
        "recon_acc": {h: mean_std([accuracy(p_recon[h], labels[h])]) for h in labels},
        # where swaps and reconstructions lose the look: [true][judged] counts per attribute
        "confusion": {
            "swap": {a: np.sum([confusion(p[a], labels[a]) for p in p_swaps], axis=0).tolist() for a in attributes},
            "recon": {a: confusion(p_recon[a], labels[a]) for a in attributes},
        },
        "benchmark": bench.name if bench else None,
        "model_id": getattr(model, "model_id", None),
        "judge_id": getattr(judge, "judge_id", None),
        "f_prior": model.config.f_prior,
        "repeats": int(repeats),
        "swap_rounds": int(swap_rounds),
        "n_test": int(n),
        "seed": int(seed),
        "elapsed_s": round(time.perf_counter() - start, 1),
    }
    return result


def motion_samples(model, judge, f, steps: int, n_f: int = 100, per_f: int = 30, generator=None, batch_size: int = 256) -> dict:
    """How varied and how clear the motions are that the learned prior draws for one content: for
    ``n_f`` of the posterior means ``f`` (evenly spaced over them), ``per_f`` roll-outs z_1:T of the
    prior each, decoded with that f and judged. ``h_y``: the entropy of the judge's mean action
    distribution over one f's samples (ln K when they cover all K actions evenly), averaged over the
    f's; ``h_yx``: the mean entropy of the judge's action for one sample (low when each is clear)."""
    import torch

    pick = torch.linspace(0, len(f) - 1, min(n_f, len(f))).round().long().to(f.device)
    fs = f[pick].repeat_interleave(per_f, dim=0)
    probs = []
    for i in range(0, len(fs), batch_size):
        fb = fs[i : i + batch_size]
        z = model.sample_z(len(fb), steps=steps, generator=generator)
        probs.append(judge.probabilities(model.decode(fb, z))["action"].float().cpu().numpy())
    probs = np.concatenate(probs).reshape(len(pick), per_f, -1)
    h_y = [marginal_entropy(p) for p in probs]
    return {"h_y": float(np.mean(h_y)), "h_yx": conditional_entropy(probs.reshape(-1, probs.shape[-1])), "n_f": int(len(pick)), "per_f": int(per_f)}


evaluate_sprites = evaluate_benchmark  # its first name: the figures are the same on every benchmark


# --------------------------------------------------------------------------------------------
# reconstruction and prediction (the paper's comparison of stochastic and deterministic dynamics)


def evaluate_prediction(model, judge, data, context: int = 4, repeats: int = 3, batch_size: int = 256, seed: int = 0, device: str = "cpu") -> dict:
    """Reconstruction and prediction quality on ``data`` (test SequenceData with labels).

    * ``recon_mse``: mean squared error per pixel (values in [0, 1]) of decode(posterior means);
    * ``pred_mse``: the same on frames ``context+1 .. T`` of ``model.predict`` (f and z_1:K encoded
      from the first ``context`` frames, the rest rolled out from the learned prior, or for the
      deterministic baselines the LSTM driven by the encoded z), mean over ``repeats`` roll-outs;
    * ``pred_acc``: the judge's accuracy on the predicted sequences (context frames + predicted
      frames) for the action and the content attributes (does the prediction go on with the same
      motion, in the same look?); mean and std over the repeats.
    """
    import torch

    from dsae_cli.data.sequences import video_batch

    T = data.x.shape[1]
    if not 1 <= context < T:
        raise DsaeError(f"--context must be between 1 and {T - 1} for {T}-frame sequences, not {context}")
    labels = _prepare(model, judge, data, repeats)
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
    acc = {h: mean_std([accuracy(_cat(p)[h], labels[h]) for p in p_pred]) for h in labels}
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
