"""The judge classifier's training loop, checkpoints and batched inference.

A judge is saved like a model: a folder with ``config.json`` (format ``"dsae-judge"``, a format
version, the :class:`~models.judge.JudgeConfig` with its heads, the training options and its
accuracy on the real test sequences of its benchmark) and ``model.safetensors``. Loading refuses
DSAE checkpoints, foreign files and unknown versions with a message that says what to pass instead.

Train one with ``dsae judge train [--data sprites|shapes] -o runs/judge``; ``dsae evaluate sprites``
uses the embedded one in ``dsae_cli/pretrained/judge/`` unless ``--judge`` is given, ``dsae evaluate
shapes`` the one in ``dsae_cli/pretrained/shapes-judge/`` where this install has one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from dsae_cli import __version__
from dsae_cli.errors import DsaeError

FORMAT = "dsae-judge"
FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
DEFAULT_JUDGE = Path(__file__).parent.parent / "pretrained" / "judge"
#: the embedded judge of each benchmark (a benchmark without a folder here has none shipped)
DEFAULT_JUDGES = {"sprites": DEFAULT_JUDGE, "shapes": DEFAULT_JUDGE.parent / "shapes-judge"}


# --------------------------------------------------------------------------------------------
# checkpoints


def save_judge(judge, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into the folder ``path`` (replaced as a whole)."""
    from dsae_cli.checkpoint import write_checkpoint

    path = Path(path)
    if path.suffix == ".safetensors" or (path.exists() and not path.is_dir()):
        raise DsaeError(f"a judge is saved as a folder; {path} is a file name, give a folder such as runs/judge")
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "class": type(judge).__name__,
        "heads": judge.config.classes,
        "config": judge.config.to_dict(),
    }
    meta.update(extra or {})
    return write_checkpoint(judge.state_dict(), meta, path)


def load_judge(path: str | Path | None = None, device: str = "cpu", benchmark: str = "sprites"):
    """Rebuild a judge from its folder (default: the embedded judge of ``benchmark``), in eval mode, on ``device``."""
    from dsae_cli.checkpoint import load_module
    from models.judge import Judge, JudgeConfig

    if path is None:
        path = DEFAULT_JUDGES[benchmark]
        if not (path / CONFIG_NAME).is_file():
            if benchmark == "sprites":
                raise DsaeError(
                    "this install has no embedded judge; train one with `dsae judge train -o runs/judge` and pass --judge runs/judge"
                )
            raise DsaeError(
                f"this install has no embedded {benchmark} judge; train one with `dsae judge train --data {benchmark} --out DIR` and pass --judge DIR"
            )
    path = Path(path)
    if not path.exists():
        raise DsaeError(f"judge {path} not found; pass a folder written by `dsae judge train` with --judge")
    if not path.is_dir():
        raise DsaeError(f"judge {path} is a file; a judge is a folder (config.json + model.safetensors) written by `dsae judge train`")
    return load_module(path, FORMAT, "judge", JudgeConfig, Judge, "retrain the judge", device)


# --------------------------------------------------------------------------------------------
# inference


def judge_probabilities(judge, x_uint8: np.ndarray, batch_size: int = 256, device: str = "cpu") -> dict[str, np.ndarray]:
    """The judge's class probabilities ``{head: (N, K)}`` for uint8 sequences (N, T, H, W, C), in batches."""
    import torch

    from dsae_cli.data.sequences import video_batch

    out: dict[str, list] = {}
    judge.eval()
    with torch.no_grad():
        for i in range(0, len(x_uint8), batch_size):
            probs = judge.probabilities(video_batch(x_uint8[i : i + batch_size], device))
            for k, v in probs.items():
                out.setdefault(k, []).append(v.cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def head_accuracies(probs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """Per-head accuracy of predicted probabilities against ground-truth labels."""
    return {k: float(np.mean(p.argmax(-1) == labels[k])) for k, p in probs.items()}


# --------------------------------------------------------------------------------------------
# training


def train_judge(
    train,
    test,
    config,
    epochs: int = 5,
    minutes: float = 0.0,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    device: str = "cpu",
    log=None,
    progress=None,
):
    """Train a judge with ``config``'s heads on ``train`` (SequenceData with a label of every head) and
    measure it on ``test``.

    Stops after ``epochs`` passes or ``minutes`` of wall clock (0: no limit), whichever comes first;
    the learning rate decays along a cosine over the planned epochs (a time stop cuts it short).
    ``progress(step, total, info)`` is called after every step, ``log(msg)`` after every epoch.
    Returns ``(judge, summary)``; the summary holds the per-head test accuracy and the timings.
    """
    import torch

    from dsae_cli.data.sequences import video_batch
    from dsae_cli.runtime import seed_everything
    from models.judge import Judge

    log = log or (lambda msg: None)
    heads = config.heads
    for name, data in (("training", train), ("test", test)):
        missing = [k for k in heads if k not in data.labels]
        if missing:
            raise DsaeError(f"the {name} sequences have no {', '.join(missing)} labels, which this judge's heads need")
    seed_everything(seed)
    judge = Judge(config).to(device)
    opt = torch.optim.Adam(judge.parameters(), lr=lr)
    rng = np.random.RandomState(seed)
    labels = {k: torch.from_numpy(np.asarray(train.labels[k], dtype=np.int64)) for k in heads}
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total = steps_per_epoch * epochs
    # cosine decay over the planned steps: the last epoch fine-tunes at a small rate (the hardest
    # head is skin, whose close tones, e.g. the two grey-violet ones, are learned last)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    start = time.perf_counter()
    step, history, stopped_early, train_s = 0, [], False, 0.0
    for epoch in range(epochs):
        judge.train()
        order = rng.permutation(len(train))
        running = {}
        epoch_start = time.perf_counter()
        for i in range(0, len(order), batch_size):
            idx = np.sort(order[i : i + batch_size])  # sorted reads are faster on the big uint8 array
            x = video_batch(train.x[idx], device)
            out = judge.loss(x, {k: v[idx].to(device) for k, v in labels.items()})
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            step += 1
            sched.step()
            for k, v in out.items():
                v = float(v.detach())
                running[k] = 0.9 * running.get(k, v) + 0.1 * v
            if progress is not None:
                info = f"loss {running['loss']:.3f} " + " ".join(f"{k} {100 * running[f'acc_{k}']:.0f}%" for k in heads)
                progress(step, total, info)
            if minutes and time.perf_counter() - start > 60 * minutes:
                stopped_early = True
                break
        train_s += time.perf_counter() - epoch_start
        acc = head_accuracies(judge_probabilities(judge, test.x, device=device), test.labels)
        history.append({"epoch": epoch + 1, "step": step, "elapsed_s": round(time.perf_counter() - start, 1), "test_accuracy": acc})
        shown = ", ".join(f"{k} {100 * a:.2f}%" for k, a in acc.items())
        log(f"epoch {epoch + 1}: step {step}, {time.perf_counter() - start:.0f} s, test accuracy {shown}")
        if stopped_early:
            break
    judge.eval()
    elapsed = time.perf_counter() - start
    summary = {
        "test_accuracy": history[-1]["test_accuracy"] if history else {},
        "n_train": len(train),
        "n_test": len(test),
        "epochs_run": len(history),
        "steps": step,
        "elapsed_s": round(elapsed, 1),
        "train_s": round(train_s, 1),
        "seconds_per_step": round(train_s / max(step, 1), 4),
        "stopped_by_time": stopped_early,
        "history": history,
    }
    return judge, summary
