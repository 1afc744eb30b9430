"""The training loop. It knows nothing about the DSAE beyond its forward pass, ``model(batch, beta_f, beta_z) -> dict`` of losses.

Its options are a :class:`~dsae_cli.train.config.TrainConfig`; what it writes into the run folder
(model, best model, resume state, metrics, previews) is listed in :mod:`dsae_cli.train.runfolder`.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path

import numpy as np
import torch

from dsae_cli.train import distributed
from dsae_cli.checkpoint import save_model
from dsae_cli.data.sequences import SequenceData
from dsae_cli.train.batches import Batches
from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path
from dsae_cli.train.config import TrainConfig, autocast_dtype, rank_seed  # TrainConfig: tests/test_speech.py imports it from here
from dsae_cli.train.runfolder import read_metrics, remove_stale_temp_files, repair_metrics


class Trainer:
    """Steps, minutes, learning-rate schedules, checkpoints, resume, several processes and metrics.

    Each step calls ``model(**batches.make(...), **loss_kwargs(step))``, a dict of losses with ``loss``;
    validation calls ``model.loss(**batches.plain(x), **val_kwargs)``. ``callbacks`` get
    ``on_preview(trainer, history)`` every ``preview_every`` steps and at the end.
    """

    def __init__(
        self, model, data: SequenceData, val: SequenceData | None, cfg: TrainConfig, run_dir: Path, log=None,
        dist: distributed.DistInfo = distributed.SINGLE, batches=None, loss_kwargs=None, val_kwargs: dict | None = None,
        callbacks=(),
    ):  # fmt: skip
        self.dist = dist  # under torchrun: this process's rank; rank 0 alone writes files and logs
        self.device = distributed.local_device(cfg.device, dist)
        self.model = model.to(self.device)
        self.data, self.val, self.cfg, self.run_dir = data, val, cfg, Path(run_dir)
        self.log = (log or (lambda msg: None)) if dist.is_main else (lambda msg: None)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step = 0
        self.epoch = 0
        self.position = 0  # index into the current epoch's order
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        self.order = self._new_order()
        self.best_val = math.inf
        self.bad_steps = 0
        self.last_logged = -1
        self.elapsed = 0.0  # training seconds accumulated over every launch of this run (resumes included)
        self.lr_progress = 0.0  # cosine-time: how far the anneal has gone (0..1), kept across resumes
        self._progress_at_start, self._budget_s, self._launch_s = 0.0, math.inf, 0.0
        self.current_lr = cfg.lr
        self.stop_requested = False
        self.checkpoint_extra: dict = {}  # metadata saved in every checkpoint (speech: spectrogram settings)
        self.amp_dtype = autocast_dtype(cfg.precision, self.device)
        if dist.enabled:
            if cfg.batch_size % dist.world_size:
                raise DsaeError(
                    f"--batch-size {cfg.batch_size} is the batch of all {dist.world_size} processes together and must "
                    f"divide evenly among them; use a multiple of {dist.world_size}"
                )
            if len(data) < dist.world_size:
                raise DsaeError(f"{len(data)} training sequences cannot feed {dist.world_size} processes; use fewer processes or more data")
            # each process draws its own posterior noise; the weights are the same (DDP broadcasts rank 0's)
            if dist.rank > 0:
                torch.manual_seed(rank_seed(cfg.seed, 0, dist.rank))
        self.batches = batches if batches is not None else Batches(data)
        self.loss_kwargs = loss_kwargs or (lambda step: {})
        self.val_kwargs = dict(val_kwargs or {})
        self.callbacks = list(callbacks)
        self.train_model = self._wrap_for_training()

    # ------------------------------------------------------------------ data order
    def _new_order(self) -> np.ndarray:
        return torch.randperm(len(self.data), generator=self.order_gen).numpy()

    def next_batch(self) -> dict:
        """The next batch of the seeded order, as keyword arguments of the model's forward pass. Under
        torchrun every process walks the same order and takes every N-th index of each global batch."""
        world = self.dist.world_size
        bs = min(self.cfg.batch_size, len(self.data)) // self.batches.per_index  # e.g. pairs: half from the order
        bs -= bs % world  # equal shares, so every process takes the same number of steps
        if self.position + bs > len(self.order):
            self.epoch += 1
            self.order = self._new_order()
            self.position = 0
        idx = np.sort(self.order[self.position : self.position + bs])
        self.position += bs
        if world > 1:
            idx = idx[self.dist.rank :: world]
        return self.batches.make(idx, self.step, self.dist.rank, self.device)

    # ------------------------------------------------------------------ state
    def rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.startswith("cuda"):
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def state_dict(self) -> dict:
        """Everything a resumed run needs to take exactly the steps this one would have taken.

        Under torchrun every process must call this (it gathers each process's RNG state)."""
        rngs = distributed.all_gather_objects(self.rng_state(), self.dist)
        return {
            # the weights too: a crash between writing model.safetensors and state.pt can then
            # never pair one step's weights with another step's optimiser state
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "world_size": self.dist.world_size,
            "rank_rng": rngs,
            "cuda_rng": rngs[0].get("cuda"),
            "bad_steps": self.bad_steps,
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "order": torch.from_numpy(self.order.copy()),
            "order_gen": self.order_gen.get_state(),
            "torch_rng": rngs[0]["torch"],
            "optimizer": self.opt.state_dict(),
            "best_val": self.best_val,
            "last_logged": self.last_logged,
            "elapsed": self.elapsed,
            "lr_progress": self.lr_progress,
        }

    def load_state_dict(self, s: dict) -> None:
        self.step, self.epoch, self.position = int(s["step"]), int(s["epoch"]), int(s["position"])
        self.order = s["order"].numpy()
        self.order_gen.set_state(s["order_gen"])
        if "model" in s:  # older state.pt files have no weights; the caller loaded model.safetensors
            self.model.load_state_dict(s["model"])
        rngs = s.get("rank_rng") or [{"torch": s["torch_rng"], "cuda": s.get("cuda_rng")}]
        if self.dist.rank < len(rngs):
            torch.set_rng_state(rngs[self.dist.rank]["torch"])
            if rngs[self.dist.rank].get("cuda") is not None and self.device.startswith("cuda"):
                torch.cuda.set_rng_state(rngs[self.dist.rank]["cuda"], self.device)
        else:  # more processes than the run had: a fresh, still reproducible, stream for the new ones
            torch.manual_seed(rank_seed(self.cfg.seed, self.step, self.dist.rank))
        self.opt.load_state_dict(s["optimizer"])
        self.bad_steps = int(s.get("bad_steps", 0))
        self.best_val = float(s["best_val"])
        self.last_logged = int(s["last_logged"])
        self.elapsed = float(s.get("elapsed", 0.0))
        self.lr_progress = float(s.get("lr_progress", 0.0))

    def save_checkpoint(self) -> None:
        state = self.state_dict()  # every process takes part (RNG states); rank 0 writes
        if not self.dist.is_main:
            return
        save_model(self.model, self.run_dir, extra={**self.checkpoint_extra, "step": self.step, "source": self.data.source})
        with atomic_path(self.run_dir / "state.pt") as tmp:
            torch.save(state, tmp)

    # ------------------------------------------------------------------ one step
    def lr_at(self, step: int) -> float:
        """The rate for the step after `step` steps. cosine-time also counts the wall clock since
        this launch of the run (rank 0's under torchrun, so every process takes the same rate)."""
        if self.cfg.lr_schedule == "constant":
            return self.cfg.lr
        progress = min(1.0, step / self.cfg.steps)
        if self.cfg.lr_schedule == "cosine-time":
            p0 = self._progress_at_start
            by_time = p0 + (1.0 - p0) * min(1.0, self._launch_s / self._budget_s) if math.isfinite(self._budget_s) else 0.0
            progress = self.lr_progress = max(progress, by_time)  # by_time starts where a resumed anneal was
        return self.cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))

    def skip_step(self, what: str) -> None:
        """A non-finite loss or gradient never reaches the weights or a checkpoint."""
        self.opt.zero_grad(set_to_none=True)
        self.bad_steps += 1
        self.log(f"warning: non-finite {what} at step {self.step + 1}; step skipped")
        if self.bad_steps >= 10:
            raise DsaeError(f"the {what} was non-finite 10 times in a row; lower --lr or check the data")

    def train_step(self) -> dict | None:
        self.model.train()
        batch = self.next_batch()
        self.current_lr = self.lr_at(self.step)
        for group in self.opt.param_groups:  # set every step: the schedule is a function of the step (and, cosine-time, the clock)
            group["lr"] = self.current_lr
        amp = torch.autocast(torch.device(self.device).type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with amp:
            out = self.train_model(**batch, **self.loss_kwargs(self.step))
        keys = list(out)
        values = torch.stack([out[k].detach().float() for k in keys])
        if self.dist.enabled:  # the mean over all processes; non-finite if any process's is
            values = distributed.all_reduce(values, self.dist) / self.dist.world_size
        if not torch.isfinite(values[keys.index("loss")]):
            self.skip_step("loss")
            return None
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        # gradients are already averaged over processes here, so every process decides alike
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf)
        if not torch.isfinite(grad_norm):
            self.skip_step("gradient norm")
            return None
        self.bad_steps = 0
        self.opt.step()
        self.step += 1
        return dict(zip(keys, values.tolist()))

    def _wrap_for_training(self):
        """What the training forward pass calls: the model, under DDP across processes, maybe compiled."""
        net = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            dev = torch.device(self.device)
            net = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
        if self.cfg.compile:
            net = torch.compile(net)
        return net

    def should_stop(self, over_budget: bool) -> bool:
        """Whether to stop before the next step. Under torchrun all processes must stop at the same
        step, so rank 0's clock alone decides the --minutes budget and a Ctrl-C seen by any process counts."""
        if not self.dist.enabled:
            return self.stop_requested or over_budget
        launch_s = self._launch_s if self.dist.is_main else 0.0
        flags = torch.tensor([float(over_budget and self.dist.is_main), float(self.stop_requested), launch_s], dtype=torch.float64, device=self.device)
        flags = distributed.all_reduce(flags, self.dist, op="max").tolist()
        self.stop_requested = flags[1] > 0
        self._launch_s = flags[2]  # rank 0's clock, for cosine-time
        return flags[0] > 0 or flags[1] > 0

    def metrics_record(self, out: dict) -> dict:
        record = {"step": self.step, **{k: round(v, 4) for k, v in out.items()}, "time_s": round(self.elapsed, 2)}
        if self.cfg.lr_schedule != "constant":
            record["lr"] = float(f"{self.current_lr:.4g}")  # the rate this step was taken with
        return record

    @torch.no_grad()
    def validate(self) -> float:
        if self.val is None or len(self.val) == 0:
            return math.nan
        self.model.eval()
        total, n = 0.0, 0
        # the same posterior noise every time, so values compare across steps; the training streams
        # (CPU and, on a GPU, its own) continue afterwards as if validation had not run
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if self.device.startswith("cuda") else []):
            torch.manual_seed(12345)
            for i in range(0, len(self.val), 256):
                x = self.val.x[i : i + 256]
                out = self.model.loss(**self.batches.plain(x, self.device), **self.val_kwargs)
                total += float(out["loss"]) * len(x)
                n += len(x)
        return total / n

    # ------------------------------------------------------------------ loop
    def fit(self, progress=None) -> dict:
        cfg = self.cfg
        main = self.dist.is_main  # under torchrun only rank 0 validates and writes files
        metrics_path = self.run_dir / "metrics.jsonl"
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.run_dir)
            repair_metrics(metrics_path)
        history = read_metrics(metrics_path) if main else []
        # steps logged after the last checkpoint (before a crash) are re-run but not logged twice
        self.last_logged = max([self.last_logged, *(int(r.get("step", -1)) for r in history)])

        def on_stop_signal(signum, frame):  # Ctrl-C or SIGTERM: finish the step, then checkpoint and stop
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        old_handlers = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old_handlers[sig] = signal.signal(sig, on_stop_signal)
            except ValueError:  # not the main thread (e.g. inside some test runners)
                break
        start = time.perf_counter()
        launch_start_elapsed = self.elapsed
        budget = cfg.minutes * 60.0 if cfg.minutes > 0 else math.inf
        self._progress_at_start, self._budget_s, self._launch_s = self.lr_progress, budget, 0.0
        last = None
        seqs, t_rate = 0, time.perf_counter()
        rate = 0.0
        try:
            with open(metrics_path, "a") if main else contextlib.nullcontext() as mfile:
                while self.step < cfg.steps:
                    self.elapsed = launch_start_elapsed + time.perf_counter() - start
                    self._launch_s = self.elapsed - launch_start_elapsed
                    if self.should_stop(self._launch_s >= budget):
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
                        record = self.metrics_record(out)
                    if main and cfg.eval_every and self.step % cfg.eval_every == 0:
                        val = self.validate()
                        record = record or self.metrics_record(out)
                        record["val_loss"] = round(val, 4)
                        if val < self.best_val:
                            self.best_val = val
                            save_model(self.model, self.run_dir / "best", extra={**self.checkpoint_extra, "step": self.step, "val_loss": val})
                    if main and record is not None and self.step > self.last_logged:
                        mfile.write(json.dumps(record) + "\n")
                        mfile.flush()
                        history.append(record)
                        self.last_logged = self.step
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    if main and cfg.preview_every and self.step % cfg.preview_every == 0:
                        self.preview(history)
                    if progress is not None:
                        progress(self.step, out, rate)
            # final pass: validation, best model, checkpoint, pictures
            if main and self.val is not None and len(self.val) and (not cfg.eval_every or self.step % cfg.eval_every):
                val = self.validate()
                if val < self.best_val:
                    self.best_val = val
                    save_model(self.model, self.run_dir / "best", extra={**self.checkpoint_extra, "step": self.step, "val_loss": val})
            self.save_checkpoint()
            if main and cfg.preview_every:
                self.preview(history)
        finally:
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
        return {"step": self.step, "last": last, "best_val": self.best_val, "elapsed_s": self.elapsed, "interrupted": self.stop_requested}

    def preview(self, history: list[dict]) -> None:
        for callback in self.callbacks:
            try:
                callback.on_preview(self, history)
            except DsaeError:
                raise
            except Exception as err:  # pictures are a courtesy; a failure must not stop training
                self.log(f"warning: could not write previews ({type(err).__name__}: {err})")
