"""``dsae train``: a recipe's stages, each a run of the training loop on the user's data.

A one-stage recipe trains in the run folder itself. A recipe of several stages trains each in a
sub-folder (``RUN/1-elbo``, ``RUN/2-cycle``, ...), each stage after the first starting from the
previous stage's ``best/``, and the last stage's models are copied to ``RUN/`` and ``RUN/best/``.
``RUN/recipe.json`` records the fully resolved recipe, so ``--resume RUN`` goes on where it stopped.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dsae_cli.errors import DsaeError
from dsae_cli.io.files import atomic_path
from dsae_cli.train.recipes import LOSS_WEIGHTS, Recipe, apply_overrides, default_recipe, load_recipe, nearest, scale_minutes, stage_plans

RECIPE_FILE = "recipe.json"
DONE_FILE = "done.json"


def holds_model(folder: Path) -> bool:
    folder = Path(folder)
    return any((folder / name).exists() for name in ("config.json", "model.safetensors", "state.pt", RECIPE_FILE))


def train(
    recipe: str | Path | Recipe | None = None,
    data: str | None = None,
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    sets: list[str] | tuple = (),
    minutes: float | None = None,
    log=print,
    progress_factory=None,
    **train_overrides,
) -> dict:
    """Train ``recipe`` (a built-in name, a TOML path or a :class:`Recipe`; default: see
    :func:`~dsae_cli.train.recipes.default_recipe`) on ``data`` into the new folder ``out``, or go on with the run
    in ``resume``. ``sets`` are ``--set`` assignments; ``minutes`` scales every stage in proportion;
    ``train_overrides`` (steps, batch_size, lr, seed, device, precision, checkpoint_every, eval_every,
    preview_every) apply to every stage. Returns the last stage's summary."""
    from dsae_cli.train import distributed

    try:
        return _train(recipe, data, out, resume, init_from, sets, minutes, log, progress_factory, train_overrides)
    finally:
        distributed.shutdown(distributed.env_info())  # under torchrun: one process group for every stage


def _train(recipe, data, out, resume, init_from, sets, minutes, log, progress_factory, train_overrides) -> dict:
    import dataclasses

    from dsae_cli.train.config import TrainConfig

    main = distributed_rank() == 0  # under torchrun rank 0 alone checks and writes the run folder
    train_overrides = {k: v for k, v in train_overrides.items() if v is not None}
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in train_overrides:
        if key not in known:
            raise DsaeError(f"unknown training option {key!r}{nearest(key, known)}")
    if resume is not None:
        if out is not None or init_from is not None or recipe is not None or sets:
            raise DsaeError("--resume goes on with the run's own recipe; drop --out, --recipe, --set and --init-from")
        run_dir = Path(resume)
        if minutes is not None:  # the budget of what is left: each remaining stage
            train_overrides["minutes"] = minutes
        saved = run_dir / RECIPE_FILE
        if not saved.is_file():  # a run of one stage made without a recipe file: the loop resumes it as it is
            from dsae_cli.train.stage import run_stage

            return _finish(run_stage(data, run_dir, resume=True, train_overrides=train_overrides, log=log, progress_factory=progress_factory), run_dir)
        try:
            meta = json.loads(saved.read_text())
            rec = Recipe.from_dict(meta["recipe"])
        except (ValueError, KeyError, TypeError):
            raise DsaeError(f"{saved} is damaged, so the run cannot be resumed; start a new run with --out") from None
        return _run_stages(
            rec, data or meta.get("data"), run_dir, meta.get("init_from"), set(meta.get("user_model_keys", [])),
            set(meta.get("user_train_keys", [])), train_overrides, log, progress_factory, resuming=True,
        )  # fmt: skip

    if out is None:
        raise DsaeError("say where the run goes with --out RUN_DIR (or continue one with --resume RUN_DIR)")
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise DsaeError(f"--out {run_dir} is a file; give a folder for the run (it is created if missing)")
    if main and holds_model(run_dir):
        what = "a run" if (run_dir / "state.pt").exists() or (run_dir / RECIPE_FILE).exists() else "a model"
        raise DsaeError(f"{run_dir} already holds {what}; continue a run with --resume {run_dir} or choose a new --out folder")
    if init_from is not None and Path(init_from).resolve() == run_dir.resolve():
        raise DsaeError("--out must be a new folder, not the --init-from model")
    if isinstance(recipe, Recipe):
        rec = recipe
    else:
        rec = load_recipe(recipe or default_recipe(data))
    rec = apply_overrides(rec, list(sets))
    if minutes is not None:
        rec = scale_minutes(rec, minutes)
    for stage in rec.stages:
        stage.update(train_overrides)
    user_model_keys = {s.split("=", 1)[0].split(".", 1)[1] for s in sets if s.startswith("model.")}
    user_train_keys = {s.split("=", 1)[0].rsplit(".", 1)[-1] for s in sets if s.startswith("train.")}
    data = data if data is not None else rec.data
    if data is None:
        raise DsaeError("say what to train on with --data sprites|FILE.npz|DIR|speech:DIR")
    if init_from is not None:
        fixed = sorted(user_model_keys - set(LOSS_WEIGHTS))
        if fixed:
            raise DsaeError(
                f"--init-from takes the architecture from {init_from}; --set may change only model.{', model.'.join(LOSS_WEIGHTS)} "
                f"(drop model.{', model.'.join(fixed)})"
            )
    if init_from is not None:
        from dsae_cli.checkpoint import load_model
        from dsae_cli.runtime import model_path

        init_from = model_path(init_from, "video")  # an embedded model's name, as --model takes it
        load_model(init_from)  # a missing or damaged model is refused before anything is written
    created = not run_dir.exists()
    meta = {"recipe": rec.to_dict(), "data": data, "init_from": str(init_from) if init_from else None, "user_model_keys": sorted(user_model_keys), "user_train_keys": sorted(user_train_keys)}
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(run_dir / RECIPE_FILE) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
    try:
        return _run_stages(rec, data, run_dir, init_from, user_model_keys, user_train_keys, {}, log, progress_factory, resuming=False)
    except DsaeError:
        if main and not any(run_dir.rglob("state.pt")):  # nothing trained yet: leave no half-made run behind
            (run_dir / RECIPE_FILE).unlink(missing_ok=True)
            if created:
                shutil.rmtree(run_dir, ignore_errors=True)
        raise


def _run_stages(
    rec: Recipe, data: str, run_dir: Path, init_from, user_model_keys: set, user_train_keys: set, resume_overrides: dict,
    log, progress_factory, resuming: bool,
) -> dict:  # fmt: skip
    from dsae_cli.train.stage import run_stage

    plans = stage_plans(rec)
    n = len(plans)
    summary: dict = {}
    previous: Path | None = None
    for plan in plans:
        folder = plan.folder(run_dir, n)
        more = resuming and plan.index == n and ("steps" in resume_overrides or "minutes" in resume_overrides)
        if (folder / DONE_FILE).is_file() and not more:  # a finished stage; the last one goes on when given more steps or minutes
            previous = folder
            continue
        if n > 1:
            log(f"stage {plan.index} of {n}: {plan.name} ({plan.train.get('minutes', 0):g} min) in {folder}")
        if resuming and (folder / "state.pt").is_file():
            summary = run_stage(data, folder, resume=True, train_overrides=resume_overrides, log=log, progress_factory=progress_factory)
        else:
            clear_unfinished_stage(folder, run_dir)
            start_from = init_from if previous is None else previous / "best"
            # from a trained model the architecture is the model's own: only loss weights set by the user carry over
            model = dict(rec.model) if start_from is None else {k: v for k, v in rec.model.items() if k in user_model_keys and k in LOSS_WEIGHTS}
            model.update(plan.model)
            model.update({k: rec.model[k] for k in user_model_keys & set(LOSS_WEIGHTS) if k in rec.model})  # --set wins over a stage's own
            train_cfg = dict(plan.train)
            if start_from is not None and previous is None and "static_first" not in user_train_keys:
                train_cfg.pop("static_first", None)  # f already draws the look: a static phase is for a new model
            train_cfg.update(resume_overrides)
            summary = run_stage(
                data, folder, model=model, train=train_cfg, init_from=start_from, recipe_name=rec.name, stage=plan.name,
                log=log, progress_factory=progress_factory,
            )  # fmt: skip
        if summary.get("interrupted"):  # the models so far are the stage's; --resume RUN goes on
            return _finish(summary, folder)
        if summary.get("rank", 0) == 0:
            with atomic_path(folder / DONE_FILE) as tmp:
                tmp.write_text(json.dumps({"step": summary["step"], "elapsed_s": round(summary["elapsed_s"], 1)}) + "\n")
        previous = folder
    if resuming and not summary:  # every stage had finished and no more steps were asked for
        check_finished_stage(previous)
        if n > 1:  # the copy to RUN may have been cut off after the last stage finished
            from dsae_cli.checkpoint import copy_model

            copy_model(previous, run_dir)
            copy_model(previous / "best", run_dir / "best")
        raise DsaeError(
            f"{run_dir} has finished its recipe ({n} stage{'s' if n > 1 else ''}); give --steps N or --minutes M "
            "with --resume to train its last stage further"
        )
    if n > 1 and summary.get("rank", 0) == 0 and previous is not None:
        from dsae_cli.checkpoint import copy_model

        copy_model(previous, run_dir)
        copy_model(previous / "best", run_dir / "best")
        log(f"recipe {rec.name}: the last stage's models copied to {run_dir} and {run_dir / 'best'}")
    return _finish(summary, run_dir)


def distributed_rank() -> int:
    from dsae_cli.train import distributed

    return distributed.env_info().rank


def clear_unfinished_stage(folder: Path, run_dir: Path) -> None:
    """A stage that starts (again) from its beginning starts in a clean folder: what an attempt cut off
    before its first checkpoint left (metrics, best/, pictures) goes; the run's recipe.json stays."""
    if distributed_rank() != 0 or not folder.is_dir() or (folder / "state.pt").exists():
        return
    if folder != run_dir:
        shutil.rmtree(folder)
        return
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "train.json", "loss.png", "preview.gif", "preview.png", DONE_FILE):
        (folder / name).unlink(missing_ok=True)
    shutil.rmtree(folder / "best", ignore_errors=True)


def check_finished_stage(folder: Path) -> None:
    """Refuse, in one line, a finished stage whose files could not be resumed."""
    import torch

    from dsae_cli.train.runfolder import check_run_folder

    check_run_folder(folder)
    try:
        torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    except Exception as err:
        raise DsaeError(f"{folder}/state.pt is damaged ({type(err).__name__}); restart the run without --resume") from None


def _finish(summary: dict, run_dir: Path) -> dict:
    summary = dict(summary)
    summary["run_dir"] = str(run_dir)
    return summary
