"""One stage of a recipe: load the data, build (or load) the model, run the loop, fit p(f)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dsae_cli.train import distributed
from dsae_cli.checkpoint import load_model
from dsae_cli.errors import DsaeError
from dsae_cli.train.config import LR_SCHEDULES, TrainConfig, augmentations, autocast_dtype
from dsae_cli.train.loop import Trainer
from dsae_cli.train.runfolder import check_run_folder, save_train_config
from dsae_cli.train.recipes import LOSS_WEIGHTS


def run_stage(
    data_spec: str | None,
    run_dir: Path,
    *,
    resume: bool = False,
    model: dict | None = None,
    train: dict | None = None,
    init_from: Path | None = None,
    train_overrides: dict | None = None,
    recipe_name: str = "",
    stage: str = "",
    log=print,
    progress_factory=None,
) -> dict:
    """Train one stage in ``run_dir`` (new, from the model fields ``model`` or the weights of
    ``init_from`` with the loss weights in ``model``; or ``resume`` the stage there) and return the
    loop's summary. ``progress_factory(total_steps, start_step)`` returns a context manager yielding a callback."""
    from models import DSAE, DSAEConfig

    from dsae_cli.data.sequences import HOLD_OUT_SEED, load_training_data, validation_split
    from dsae_cli.runtime import keep_freed_memory, resolve_device, seed_everything
    from dsae_cli.data.speech import parse_speech_spec, prepare_speech_training
    from dsae_cli.train.prior import refit_saved_f_prior

    run_dir = Path(run_dir)
    train = dict(train or {})
    train_overrides = dict(train_overrides or {})
    resume_meta = None
    if resume:
        if not (run_dir / "train.json").is_file():
            raise DsaeError(f"{run_dir} is not a dsae run folder (no train.json); start a new run with --out")
        check_run_folder(run_dir)
        saved = json.loads((run_dir / "train.json").read_text())
        cfg = TrainConfig.from_dict({**saved["train"], **train_overrides})
        data_spec = data_spec or saved["data"]
        resume_meta = json.loads((run_dir / "config.json").read_text())
        model_cfg = DSAEConfig.from_dict(resume_meta["config"])
        init_model = None
    else:
        if data_spec is None:
            raise DsaeError("say what to train on with --data sprites|FILE.npz|DIR|speech:DIR")
        init_model = None
        model = dict(model or {})
        if init_from is not None:
            fixed = sorted(set(model) - set(LOSS_WEIGHTS))
            if fixed:
                raise DsaeError(f"a run from {init_from} keeps its architecture; only {', '.join(LOSS_WEIGHTS)} can change (not {', '.join(fixed)})")
            init_model = load_model(init_from)
            model = {**init_model.config.to_dict(), **model}
        try:
            model_cfg = DSAEConfig.from_dict(model)
        except (TypeError, ValueError) as err:
            raise DsaeError(f"invalid model field: {err}") from None
        cfg = TrainConfig.from_dict({**train, **train_overrides})
    cfg.device = resolve_device(cfg.device)
    _, modality = parse_speech_spec(data_spec, None)
    if model_cfg.modality != (modality or "video"):
        hint = "speech or tiny-speech" if modality == "speech" else "sprites, paper or tiny"
        raise DsaeError(f"the recipe makes a {model_cfg.modality} model but the data is {modality or 'video'}; use --recipe {hint}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.minutes < 0:
        raise DsaeError("--steps and --batch-size must be at least 1, --lr positive, --minutes not negative")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise DsaeError(f"unknown train.lr_schedule {cfg.lr_schedule!r}; use {', '.join(LR_SCHEDULES[:-1])} or {LR_SCHEDULES[-1]}")
    if cfg.warp < 0 or (cfg.warp > 0 and model_cfg.modality != "speech"):
        raise DsaeError("train.warp stretches voices: it needs speech data (--data speech:DIR) and a value of 0 or more")
    augment = augmentations(cfg.augment)
    if augment and model_cfg.modality != "video":
        raise DsaeError("train.augment flips and recolours video clips: it needs video data; leave it empty for speech")
    if "channels" in augment and model_cfg.channels != 3:
        raise DsaeError(f"train.augment=channels reorders the 3 colour channels, but the frames have {model_cfg.channels}; drop channels")
    autocast_dtype(cfg.precision, cfg.device)  # an impossible --precision fails now, not after loading the data
    dist = distributed.init(cfg.device)  # under torchrun: join the other processes
    if not dist.is_main:  # only rank 0 speaks
        log, progress_factory = (lambda msg: None), None

    seed_everything(cfg.seed)
    keep_freed_memory()  # every step frees and remakes tens of MB: reuse them rather than fault them in again
    checkpoint_extra = {}
    if model_cfg.modality == "speech":
        folder, _ = parse_speech_spec(data_spec, "speech")
        data_spec = f"speech:{folder}"
        meta = resume_meta or (init_model.checkpoint_meta if init_model is not None else None)  # keep the model's normalisation
        train_data, val_data, checkpoint_extra, n_val_utts = prepare_speech_training(folder, model_cfg, cfg.val_fraction, HOLD_OUT_SEED, meta)
        log(
            f"data: {train_data.source}: {len(train_data)} training segments, {len(val_data) if val_data else 0} "
            f"held out for validation ({n_val_utts} utterances)"
        )
    else:
        data = load_training_data(data_spec, model_cfg.seq_len, model_cfg.frame_size)
        if data.x.shape[1] != model_cfg.seq_len or data.x.shape[2] != model_cfg.frame_size:
            raise DsaeError(
                f"the data has sequences of {data.x.shape[1]} frames of {data.x.shape[2]} px but the model wants "
                f"{model_cfg.seq_len} x {model_cfg.frame_size} px"
            )
        train_idx, val_idx = validation_split(data, cfg.val_fraction)
        train_data, val_data = data.subset(train_idx), (data.subset(val_idx) if len(val_idx) else None)
        log(
            f"data: {data.source}: {len(train_data)} training sequences, {len(val_idx)} held out for validation "
            f"({len(np.unique(data.groups[val_idx])) if len(val_idx) else 0} groups)"
        )
    parts = dsae_parts(model_cfg, cfg, train_data, checkpoint_extra)
    if resume:
        trainer = resume_trainer(run_dir, train_data, val_data, cfg, log, dist, parts)
        log(f"resuming {run_dir} at step {trainer.step}")
    else:
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        net = DSAE(model_cfg)
        extra = {"data": data_spec, "recipe": recipe_name, "stage": stage}
        if init_model is not None:
            net.load_state_dict(init_model.state_dict())
            extra["init_from"] = {"path": str(init_from), "model_id": init_model.model_id, "step": init_model.checkpoint_meta.get("step")}
            log(f"starting from the weights of {init_from} (model {init_model.model_id})")
        trainer = Trainer(net, train_data, val_data, cfg, run_dir, log, dist=dist, **parts)
        extra["autocast"] = "bf16" if trainer.amp_dtype is not None else "fp32"  # what --precision resolved to
        if dist.is_main:
            save_train_config(run_dir, cfg, extra)
        n_params = sum(p.numel() for p in net.parameters())
        log(
            f"model: {model_cfg.dynamics} dynamics, posterior {model_cfg.posterior}, f {model_cfg.f_dim}, z {model_cfg.z_dim}, "
            f"{n_params / 1e6:.2f} M parameters; {extra['autocast']} ({cfg.precision} precision)"
        )
    trainer.checkpoint_extra = checkpoint_extra
    try:
        if progress_factory is None:
            summary = trainer.fit()
        else:
            with progress_factory(cfg.steps, trainer.step) as callback:
                summary = trainer.fit(callback)
        if cfg.fit_f_prior and dist.is_main:
            fitted = [folder for folder in (run_dir, run_dir / "best") if (folder / "model.safetensors").is_file()]
            if fitted:
                log("fitting p(f) to the training sequences' posterior (final and best models; --set train.fit_f_prior=false keeps N(0, I)) ...")
            for folder in fitted:
                n = refit_saved_f_prior(folder, train_data, device=cfg.device)
                log(f"p(f) of {folder}: fitted on {n} training sequences")
        distributed.barrier(dist)  # the other processes wait for rank 0's fit, then all go on together
    except BaseException:
        distributed.shutdown(dist)  # the process group goes with the run (train.run shuts it down after the last stage)
        raise
    summary["run_dir"] = str(run_dir)
    summary["rank"] = dist.rank  # callers print the summary on rank 0 only
    return summary


def dsae_parts(model_cfg, cfg: TrainConfig, train_data, checkpoint_extra: dict) -> dict:
    """What the loop needs to train a DSAE: its batches, the loss options of each step (the KL
    warm-up and the static phase), validation on the ELBO itself, and the previews."""
    from dsae_cli.train.batches import AugmentedBatches, Batches
    from dsae_cli.train.previews import Preview

    if model_cfg.modality == "speech":
        from dsae_cli.data.speech import SpeechBatches
        from dsae_cli.io.audio import Normalisation

        norm = Normalisation.from_dict(checkpoint_extra["normalisation"])
        batches = SpeechBatches(train_data, norm, paired=model_cfg.paired, warp=cfg.warp, seed=cfg.seed)
    elif cfg.augment:
        batches = AugmentedBatches(train_data, augmentations(cfg.augment), seed=cfg.seed)
    else:
        batches = Batches(train_data)

    def loss_kwargs(step: int) -> dict:
        ramp = 1.0 if cfg.kl_warmup <= 0 else min(1.0, (step + 1) / cfg.kl_warmup)
        return {"beta_f": model_cfg.beta_f * ramp, "beta_z": model_cfg.beta_z * ramp, "hide_z": step < cfg.static_first}

    return {"batches": batches, "loss_kwargs": loss_kwargs, "val_kwargs": {"beta_f": 1.0, "beta_z": 1.0}, "callbacks": [Preview()]}


def resume_trainer(run_dir: Path, data, val, cfg: TrainConfig, log, dist, parts: dict) -> Trainer:
    import torch

    run_dir = Path(run_dir)
    if not (run_dir / "state.pt").is_file():
        raise DsaeError(f"{run_dir} has no state.pt to resume from; start a new run with `dsae train --out DIR`")
    try:
        state = torch.load(run_dir / "state.pt", map_location="cpu", weights_only=True)
    except Exception as err:
        raise DsaeError(f"{run_dir}/state.pt is damaged ({type(err).__name__}); restart the run without --resume") from None
    if "model" in state:  # state.pt holds the weights of its own step: the model files may be one save apart
        from models import DSAE, DSAEConfig

        model = DSAE(DSAEConfig.from_dict(json.loads((run_dir / "config.json").read_text())["config"]))
    else:
        model = load_model(run_dir, device="cpu")  # the Trainer moves it to this process's device
    if model.config.f_prior == "fitted" and "f_prior_loc" not in state.get("model", {}):
        model.use_standard_f_prior()  # p(f) was fitted after the run stopped; training goes on with its own prior
    trainer = Trainer(model, data, val, cfg, run_dir, log, dist, **parts)
    try:
        trainer.load_state_dict(state)
    except Exception as err:
        raise DsaeError(f"{run_dir}/state.pt is damaged ({type(err).__name__}); restart the run without --resume") from None
    return trainer
