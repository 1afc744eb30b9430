"""The training loop. It knows nothing about the DSAE beyond ``model.loss(batch) -> dict``.

A run directory holds:
  config.json + model.safetensors   the final (latest) model
  best/                             the model with the best validation loss so far
  state.pt                          optimiser, RNG states, data order and step, for --resume
  metrics.jsonl                     one JSON object per logged step (appended, never rewritten)
  train.json                        the training options, so --resume continues the same run
  loss.png, preview.gif             a loss curve and a reconstruction/swap preview, refreshed as it goes
"""

from __future__ import annotations

import dataclasses
import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsae_cli.checkpoint import load_model, save_model
from dsae_cli.datasets import SequenceData, video_batch
from dsae_cli.errors import DsaeError
from dsae_cli.fileio import atomic_path


@dataclass
class TrainConfig:
    steps: int = 2000  # optimiser steps to run (the run stops at whichever of steps/minutes comes first)
    minutes: float = 0.0  # wall-clock budget in minutes; 0 means no limit
    batch_size: int = 32  # sequences per step
    lr: float = 1e-3  # Adam learning rate
    seed: int = 0  # seeds the model init, the data order and every sample
    checkpoint_every: int = 500  # steps between checkpoints (model + state.pt)
    log_every: int = 10  # steps between metrics.jsonl lines
    eval_every: int = 250  # steps between validation passes (best/ is kept on validation loss)
    preview_every: int = 500  # steps between loss.png / preview.gif refreshes (0: never)
    kl_warmup: int = 0  # steps over which the KL weights rise linearly from 0 to their config values
    grad_clip: float = 100.0  # clip the gradient norm (0: off)
    val_fraction: float = 0.05  # share of training characters/files held out for validation
    device: str = "cpu"

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Trainer:
    def __init__(self, model, data: SequenceData, val: SequenceData | None, cfg: TrainConfig, run_dir: Path, log=None):
        self.model = model.to(cfg.device)
        self.data, self.val, self.cfg, self.run_dir = data, val, cfg, Path(run_dir)
        self.log = log or (lambda msg: None)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step = 0
        self.epoch = 0
        self.position = 0  # index into the current epoch's order
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        self.order = self._new_order()
        self.best_val = math.inf
        self.bad_steps = 0
        self.last_logged = -1
        self.elapsed = 0.0  # training seconds accumulated over all sessions of this run
        self.stop_requested = False

    # ------------------------------------------------------------------ data order
    def _new_order(self) -> np.ndarray:
        return torch.randperm(len(self.data), generator=self.order_gen).numpy()

    def next_batch(self) -> torch.Tensor:
        bs = min(self.cfg.batch_size, len(self.data))
        if self.position + bs > len(self.order):
            self.epoch += 1
            self.order = self._new_order()
            self.position = 0
        idx = np.sort(self.order[self.position : self.position + bs])
        self.position += bs
        return self.to_batch(self.data.x[idx])

    def to_batch(self, x: np.ndarray) -> torch.Tensor:
        if self.data.modality == "video":
            return video_batch(x, self.cfg.device)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.cfg.device)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "order": torch.from_numpy(self.order.copy()),
            "order_gen": self.order_gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "optimizer": self.opt.state_dict(),
            "best_val": self.best_val,
            "last_logged": self.last_logged,
            "elapsed": self.elapsed,
        }

    def load_state_dict(self, s: dict) -> None:
        self.step, self.epoch, self.position = int(s["step"]), int(s["epoch"]), int(s["position"])
        self.order = s["order"].numpy()
        self.order_gen.set_state(s["order_gen"])
        torch.set_rng_state(s["torch_rng"])
        self.opt.load_state_dict(s["optimizer"])
        self.best_val = float(s["best_val"])
        self.last_logged = int(s["last_logged"])
        self.elapsed = float(s.get("elapsed", 0.0))

    def save_checkpoint(self) -> None:
        save_model(self.model, self.run_dir, extra={"step": self.step, "source": self.data.source})
        with atomic_path(self.run_dir / "state.pt") as tmp:
            torch.save(self.state_dict(), tmp)

    # ------------------------------------------------------------------ one step
    def kl_weights(self) -> tuple[float, float]:
        mc = self.model.config
        ramp = 1.0 if self.cfg.kl_warmup <= 0 else min(1.0, (self.step + 1) / self.cfg.kl_warmup)
        return mc.beta_f * ramp, mc.beta_z * ramp

    def train_step(self) -> dict | None:
        self.model.train()
        x = self.next_batch()
        beta_f, beta_z = self.kl_weights()
        out = self.model.loss(x, beta_f=beta_f, beta_z=beta_z)
        if not torch.isfinite(out["loss"]):
            # a non-finite loss never reaches the weights or a checkpoint
            self.bad_steps += 1
            self.log(f"warning: non-finite loss at step {self.step + 1}; step skipped")
            if self.bad_steps >= 10:
                raise DsaeError("the loss was non-finite 10 times in a row; lower --lr or check the data")
            return None
        self.bad_steps = 0
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in out.items()}

    @torch.no_grad()
    def validate(self) -> float:
        if self.val is None or len(self.val) == 0:
            return math.nan
        self.model.eval()
        rng_state = torch.get_rng_state()
        torch.manual_seed(12345)  # the same posterior noise every time, so values compare across steps
        total, n = 0.0, 0
        for i in range(0, len(self.val), 256):
            x = self.to_batch(self.val.x[i : i + 256])
            out = self.model.loss(x, beta_f=1.0, beta_z=1.0)  # the ELBO itself, whatever the schedule
            total += float(out["loss"]) * len(x)
            n += len(x)
        torch.set_rng_state(rng_state)
        return total / n

    # ------------------------------------------------------------------ loop
    def fit(self, progress=None) -> dict:
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = self.run_dir / "metrics.jsonl"
        history = read_metrics(metrics_path)
        # steps logged after the last checkpoint (before a crash) are re-run but not logged twice
        self.last_logged = max([self.last_logged, *(int(r.get("step", -1)) for r in history)])
        old_handler = signal.getsignal(signal.SIGINT)

        def on_sigint(signum, frame):  # finish the step, then checkpoint and stop
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread (e.g. inside some test runners)
            old_handler = None
        start = time.perf_counter()
        session_start_elapsed = self.elapsed
        budget = cfg.minutes * 60.0 if cfg.minutes > 0 else math.inf
        last = None
        seqs, t_rate = 0, time.perf_counter()
        rate = 0.0
        try:
            with open(metrics_path, "a") as mfile:
                while self.step < cfg.steps and not self.stop_requested:
                    self.elapsed = session_start_elapsed + time.perf_counter() - start
                    if self.elapsed - session_start_elapsed >= budget:
                        break
                    out = self.train_step()
                    if out is None:
                        continue
                    last = out
                    seqs += cfg.batch_size
                    now = time.perf_counter()
                    if now - t_rate > 2.0:
                        rate, seqs, t_rate = seqs / (now - t_rate), 0, now
                    record = None
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        record = {"step": self.step, **{k: round(v, 4) for k, v in out.items()}, "time_s": round(self.elapsed, 2)}
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        val = self.validate()
                        record = record or {"step": self.step, **{k: round(v, 4) for k, v in out.items()}, "time_s": round(self.elapsed, 2)}
                        record["val_loss"] = round(val, 4)
                        if val < self.best_val:
                            self.best_val = val
                            save_model(self.model, self.run_dir / "best", extra={"step": self.step, "val_loss": val})
                    if record is not None and self.step > self.last_logged:
                        mfile.write(json.dumps(record) + "\n")
                        mfile.flush()
                        history.append(record)
                        self.last_logged = self.step
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if cfg.preview_every and self.step % cfg.preview_every == 0:
                        self.write_previews(history)
                    if progress is not None:
                        progress(self.step, out, rate)
            # final pass: validation, best model, checkpoint, pictures
            if self.val is not None and len(self.val) and (not cfg.eval_every or self.step % cfg.eval_every):
                val = self.validate()
                if val < self.best_val:
                    self.best_val = val
                    save_model(self.model, self.run_dir / "best", extra={"step": self.step, "val_loss": val})
            self.save_checkpoint()
            if cfg.preview_every:
                self.write_previews(history)
        finally:
            if old_handler is not None:
                signal.signal(signal.SIGINT, old_handler)
        return {"step": self.step, "last": last, "best_val": self.best_val, "elapsed_s": self.elapsed, "interrupted": self.stop_requested}

    def write_previews(self, history: list[dict]) -> None:
        try:
            from dsae_cli.plots import plot_loss_curves

            plot_loss_curves(self.run_dir / "loss.png", history)
            if self.data.modality == "video":
                self.write_video_preview(self.run_dir / "preview.gif")
        except DsaeError:
            raise
        except Exception as err:  # pictures are a courtesy; a failure must not stop training
            self.log(f"warning: could not write previews ({type(err).__name__}: {err})")

    @torch.no_grad()
    def write_video_preview(self, path: Path) -> None:
        """Rows: originals, reconstructions, and each row's content with the next row's motion."""
        from dsae_cli import media

        src = self.val if self.val is not None and len(self.val) >= 2 else self.data
        # one sequence from each of several groups (characters), at different offsets within the
        # group (different motions for Sprites), so the swap row mixes different looks and moves
        groups, firsts, counts = np.unique(src.groups, return_index=True, return_counts=True)
        pick = [int(f + (4 * i) % c) for i, (f, c) in enumerate(zip(firsts[:6], counts[:6]))]
        if len(pick) < 2:
            pick = list(range(min(6, len(src))))
        n = len(pick)
        x = self.to_batch(src.x[pick])
        self.model.eval()
        recon = self.model.reconstruct(x)
        swapped = self.model.swap(x, x.roll(1, dims=0))
        seqs = [to_uint8_frames(t) for t in (x, recon, swapped)]
        rows = [seq[i] for seq in seqs for i in range(n)]
        media.write_gif(path, media.grid_animation(rows, cols=n), fps=8)


def to_uint8_frames(x: torch.Tensor) -> np.ndarray:
    """float (B, T, C, H, W) in [0, 1] -> uint8 (B, T, H, W, C)."""
    return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()


def read_metrics(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash is ignored
    return rows


def save_train_config(run_dir: Path, cfg: TrainConfig, extra: dict) -> None:
    with atomic_path(run_dir / "train.json") as tmp:
        tmp.write_text(json.dumps({"train": dataclasses.asdict(cfg), **extra}, indent=2) + "\n")


def resume_trainer(run_dir: Path, data: SequenceData, val: SequenceData | None, cfg: TrainConfig, log=None) -> Trainer:
    run_dir = Path(run_dir)
    if not (run_dir / "state.pt").is_file():
        raise DsaeError(f"{run_dir} has no state.pt to resume from; start a new run with `dsae train --out DIR`")
    model = load_model(run_dir, device=cfg.device)
    trainer = Trainer(model, data, val, cfg, run_dir, log)
    try:
        state = torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)
        trainer.load_state_dict(state)
    except Exception as err:
        raise DsaeError(f"{run_dir}/state.pt is damaged ({type(err).__name__}); restart the run without --resume") from None
    return trainer


# ---------------------------------------------------------------------------------------------
# Presets: model sizes (models.config.PRESETS) plus the training options that go with them.
TRAIN_PRESETS: dict[str, dict] = {
    "default": dict(batch_size=32, lr=1e-3, kl_warmup=0),
    "paper": dict(batch_size=64, lr=2e-4, kl_warmup=0),
    "tiny": dict(batch_size=8, lr=1e-3, kl_warmup=0, eval_every=50, checkpoint_every=100, preview_every=100),
}


def run_training(
    data_spec: str | None,
    out: Path | None,
    resume: Path | None = None,
    preset: str = "default",
    model_overrides: dict | None = None,
    train_overrides: dict | None = None,
    log=print,
    progress_factory=None,
) -> dict:
    """Train a new run in ``out`` (or continue ``resume``) and return a summary dict.

    ``model_overrides`` / ``train_overrides`` are explicit options that replace preset values;
    ``progress_factory(total_steps, start_step)`` returns a context manager yielding a callback.
    """
    from models import DSAE, DSAEConfig, PRESETS

    from dsae_cli.datasets import load_training_data, validation_split
    from dsae_cli.runtime import seed_everything

    model_overrides = dict(model_overrides or {})
    train_overrides = dict(train_overrides or {})
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "train.json").is_file():
            raise DsaeError(f"{run_dir} is not a dsae run folder (no train.json); start a new run with --out")
        saved = json.loads((run_dir / "train.json").read_text())
        cfg = TrainConfig.from_dict({**saved["train"], **train_overrides})
        data_spec = data_spec or saved["data"]
        model_cfg = DSAEConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"])
    else:
        if out is None:
            raise DsaeError("say where the run goes with --out RUN_DIR (or continue one with --resume RUN_DIR)")
        run_dir = Path(out)
        if (run_dir / "state.pt").exists():
            raise DsaeError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --out")
        if preset not in PRESETS:
            raise DsaeError(f"unknown --preset {preset!r}; use one of {', '.join(PRESETS)}")
        if data_spec is None:
            raise DsaeError("say what to train on with --data sprites|FILE.npz|DIR")
        try:
            model_cfg = DSAEConfig(**{**PRESETS.get(preset, {}), **model_overrides})
        except ValueError as err:
            raise DsaeError(f"invalid model option: {err}") from None
        cfg = TrainConfig(**{**TRAIN_PRESETS.get(preset, {}), **train_overrides})
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.minutes < 0:
        raise DsaeError("--steps and --batch-size must be at least 1, --lr positive, --minutes not negative")
    if model_cfg.modality != "video":
        raise DsaeError("speech training is not available yet in this version; train a video model (--data sprites|DIR)")

    seed_everything(cfg.seed)
    data = load_training_data(data_spec, model_cfg.seq_len, model_cfg.frame_size)
    if data.x.shape[1] != model_cfg.seq_len or data.x.shape[2] != model_cfg.frame_size:
        raise DsaeError(
            f"the data has sequences of {data.x.shape[1]} frames of {data.x.shape[2]} px but the model wants "
            f"{model_cfg.seq_len} x {model_cfg.frame_size} px"
        )
    train_idx, val_idx = validation_split(data, cfg.val_fraction, seed=cfg.seed)
    train_data, val_data = data.subset(train_idx), (data.subset(val_idx) if len(val_idx) else None)
    log(
        f"data: {data.source}: {len(train_data)} training sequences, {len(val_idx)} held out for validation "
        f"({len(np.unique(data.groups[val_idx])) if len(val_idx) else 0} groups)"
    )
    if resume is not None:
        trainer = resume_trainer(run_dir, train_data, val_data, cfg, log)
        log(f"resuming {run_dir} at step {trainer.step}")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        model = DSAE(model_cfg)
        trainer = Trainer(model, train_data, val_data, cfg, run_dir, log)
        save_train_config(run_dir, cfg, {"data": data_spec, "preset": preset})
        n_params = sum(p.numel() for p in model.parameters())
        log(f"model: {preset} preset, posterior {model_cfg.posterior}, f {model_cfg.f_dim}, z {model_cfg.z_dim}, {n_params / 1e6:.2f} M parameters")
    if progress_factory is None:
        summary = trainer.fit()
    else:
        with progress_factory(cfg.steps, trainer.step) as callback:
            summary = trainer.fit(callback)
    summary["run_dir"] = str(run_dir)
    return summary
