"""The judged evaluation (Sprites, Moving shapes) for people: Markdown tables of
:func:`~dsae_cli.evaluate.sprites.evaluate_benchmark` and :func:`~dsae_cli.evaluate.sprites.evaluate_prediction`
results, and PNG plots of the judge's class probabilities over time for generated sequences
(``dsae evaluate sprites --plots DIR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsae_cli.evaluate.benchmarks import BENCHMARKS
from dsae_cli.evaluate.metrics import top_confusions


# --------------------------------------------------------------------------------------------
# Markdown


def _pct(ms: dict) -> str:
    return f"{100 * ms['mean']:.2f} ± {100 * ms['std']:.2f} %"


def _num(ms: dict, digits: int = 3) -> str:
    return f"{ms['mean']:.{digits}f} ± {ms['std']:.{digits}f}"


def _count(n: int) -> str:
    return {2: "both", 3: "all three", 4: "all four"}.get(n, f"all {n}")


def markdown_report(r: dict) -> str:
    """The result of :func:`evaluate_benchmark` as Markdown tables (mean ± std over the repeats)."""
    attributes = tuple(k for k in r["swap"] if k not in ("all", "action"))
    heads = tuple(r["judge_acc_data"])
    bench = BENCHMARKS.get(r.get("benchmark", "sprites"))  # results from before the key are Sprites'
    every = _count(len(attributes))
    lines = [
        f"## {bench.title if bench else 'Judged'} evaluation",
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
        "| " + " | ".join((*attributes, every)) + " |",
        "|" + "---|" * (len(attributes) + 1),
        "| " + " | ".join(_pct(r["static_acc"][k]) for k in (*attributes, "all")) + " |",
        "",
        "### Swap (f of a, z_1:T of b; fixed pairs): appearance of a kept, action of b kept",
        "",
        "| " + " | ".join((*attributes, every, "action")) + " |",
        "|" + "---|" * (len(attributes) + 2),
        "| " + " | ".join(_pct(r["swap"][k]) for k in (*attributes, "all", "action")) + " |",
        "",
        "### DSAE paper table (Li & Mandt 2018): judge on data vs generations",
        "",
        "| attribute | disagreement | KL-recon | KL-random | KL-kept |",
        "|---|---|---|---|---|",
    ]
    for head in (*attributes, "action"):
        row = r["paper_table"][head]
        lines.append(f"| {head} | {_pct(row['disagreement'])} | {_num(row['kl_recon'])} | {_num(row['kl_random'])} | {_num(row['kl_kept'])} |")
    lines += [
        "",
        "### Judge accuracy on the real test data and on reconstructions",
        "",
        "| | " + " | ".join(heads) + " |",
        "|---|" + "---|" * len(heads),
        "| data | " + " | ".join(f"{100 * r['judge_acc_data'][h]['mean']:.2f} %" for h in heads) + " |",
        "| reconstruction | " + " | ".join(f"{100 * r['recon_acc'][h]['mean']:.2f} %" for h in heads) + " |",
    ]
    if "confusion" in r:
        names = bench.class_names() if bench else {}
        lines += ["", "### What swaps lose: the most frequent judge confusions (true -> judged, share of the true class)", ""]
        lines += ["| attribute | swap | reconstruction |", "|---|---|---|"]
        for a in attributes:
            cells = []
            for kind in ("swap", "recon"):
                top = top_confusions(r["confusion"][kind][a], names.get(a))
                cells.append(", ".join(f"{c['true']} -> {c['judged']} {100 * c['share']:.1f} % ({c['count']})" for c in top) or "none")
            lines.append(f"| {a} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def prediction_report(rows: list[tuple[str, dict]]) -> str:
    """Results of :func:`evaluate_prediction` for several models as one Markdown table."""
    attributes = [a for a in rows[0][1]["pred_acc"] if a != "action"] if rows else []
    lines = [
        f"| model | dynamics | recon MSE | prediction MSE | action kept | look kept: {', '.join(attributes)} (%) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        looks = ", ".join(f"{100 * r['pred_acc'][a]['mean']:.1f}" for a in attributes)
        lines.append(
            f"| {name} | {r['dynamics']} | {r['recon_mse']:.5f} | {r['pred_mse']['mean']:.5f} ± {r['pred_mse']['std']:.5f} "
            f"| {_pct(r['pred_acc']['action'])} | {looks} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# plots: the judge's class probabilities over time


def class_names(benchmark: str = "sprites") -> dict[str, tuple[str, ...]]:
    """The names of every head's classes on ``benchmark``."""
    return BENCHMARKS[benchmark].class_names()


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


def trajectory_plots(model, judge, out_dir: Path, n: int = 8, seed: int = 0, device: str = "cpu", benchmark: str = "sprites") -> list[Path]:
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
    from dsae_cli.io.plots import probability_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = class_names(benchmark)
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
        for head in judge.config.heads:
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
