"""``dsae train``: train a DSAE on Sprites, a .npz, a folder of GIFs or a speech corpus, or resume a run."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from dsae_cli.commands.common import DeviceOption


def train_command(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="sprites | FILE.npz (from `dsae data sprites`) | DIR of GIFs | speech:DIR (speaker/*.wav, LibriSpeech, TIMIT or VCTK tree)."),
    modality: Optional[str] = typer.Option(None, "--modality", help="video | speech (default: speech for --data speech:DIR, else video)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run folder to create (checkpoints, metrics.jsonl, previews)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder where it stopped."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start the new run from this model's weights (run folder or .safetensors; fresh optimiser; only the loss weights may change)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="video: default (quality per CPU-minute) | paper (the paper's sizes) | tiny; speech: speech | tiny-speech. Default: default, or speech for speech data.", show_default=False),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimiser steps (default from the preset: 2000)."),
    minutes: Optional[float] = typer.Option(None, "--minutes", min=0.0, help="Wall-clock budget; stops at whichever of steps/minutes comes first."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Sequences per step (under torchrun: all processes together)."),
    lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Adam learning rate."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for init, data order and sampling (default 0)."),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", min=1, help="Steps between checkpoints."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", min=1, help="Steps between validation passes."),
    preview_every: Optional[int] = typer.Option(None, "--preview-every", min=0, help="Steps between loss.png/preview.gif refreshes (0: off)."),
    posterior: Optional[str] = typer.Option(None, "--posterior", help="factorised: q(z_t|x_t) | full: q(z_1:T|f,x_1:T)."),
    dynamics: Optional[str] = typer.Option(None, "--dynamics", help="stochastic (the DSAE: z_1:T with a learned prior) | lstm-f | lstm-c (the paper's deterministic baselines: one z drives an LSTM)."),
    static_pool: Optional[str] = typer.Option(None, "--static-pool", help="How q(f|x_1:T) pools its LSTM's outputs: last (the paper: the end states) | mean (over the frames) | stats (mean and standard deviation, as x-vector speaker embeddings do). Not in the paper unless last."),
    f_dim: Optional[int] = typer.Option(None, "--f-dim", min=1, help="Size of the static latent f."),
    z_dim: Optional[int] = typer.Option(None, "--z-dim", min=1, help="Size of each dynamic latent z_t."),
    conv_width: Optional[int] = typer.Option(None, "--conv-width", min=1, help="Video: channels of the frame codec's first conv layer (doubling per layer, 4 layers)."),
    z_conv_width: Optional[int] = typer.Option(None, "--z-conv-width", min=1, help="Video: channels of the first conv layer of z's own frame encoder (default: --conv-width)."),
    beta_f: Optional[float] = typer.Option(None, "--beta-f", min=0.0, help="Weight of KL(f) (1 = the paper's ELBO)."),
    beta_z: Optional[float] = typer.Option(None, "--beta-z", min=0.0, help="Weight of the KL of z (1 = the paper's ELBO)."),
    likelihood: Optional[str] = typer.Option(None, "--likelihood", help="p(x_t | z_t, f): bernoulli | gaussian | laplace (sharper: an uncertain pixel takes the median, not the blend) | mixture (video, the default preset's: --components Gaussians per pixel, each with its own colour; an uncertain pixel is drawn in its likeliest colour, not a blend); gaussian, laplace and mixture have a fixed --likelihood-scale."),
    likelihood_components: Optional[int] = typer.Option(None, "--components", min=1, help="--likelihood mixture: Gaussians per pixel (default 3)."),
    likelihood_scale: Optional[float] = typer.Option(None, "--likelihood-scale", min=1e-6, help="gaussian, mixture: the fixed standard deviation of p(x_t | z_t, f) (of each component); laplace: its fixed scale b (smaller weighs reconstruction more)."),
    colour_blind_z: Optional[bool] = typer.Option(None, "--colour-blind-z/--no-colour-blind-z", help="z's encoder sees grey frames, so colours must come from f (replaces the default preset's silhouette view; the paper's model has neither: --no-silhouette-z)."),
    decoder_film: Optional[bool] = typer.Option(None, "--film/--no-film", help="f reaches the decoder only as per-channel scales and shifts (FiLM); the layout comes from z_t."),
    decoder_palette: Optional[int] = typer.Option(None, "--palette", min=0, help="video, with --film: the decoder draws this many part maps and f picks each one's colour (0: off)."),
    film_hidden: Optional[int] = typer.Option(None, "--film-hidden", min=0, help="video, with --film: f reaches the FiLM scales and shifts (and the palette) through a hidden layer of this many units (0: one linear map)."),
    decoder_refine: Optional[int] = typer.Option(None, "--refine", min=0, help="video: the decoder's last layer draws this many feature maps at full resolution, turned into colours pixel by pixel by a LeakyReLU and a 1x1 conv (sharper thin outlines; 0: off)."),
    z_silhouette: Optional[bool] = typer.Option(None, "--silhouette-z/--no-silhouette-z", help="video: z's encoder sees only the figure's silhouette (no colours or inner detail), so the look must come from f (the default preset's view)."),
    z_input_size: Optional[int] = typer.Option(None, "--z-input-size", min=0, help="z's encoder sees frames average-pooled to this size (e.g. 16; 0 = full frames)."),
    cycle_weight: Optional[float] = typer.Option(None, "--cycle-weight", min=0.0, help="Weight of the latent cycle term (swapped and prior f decoded, encoded again; not in the paper; 0 = the paper's ELBO)."),
    contrast_weight: Optional[float] = typer.Option(None, "--contrast-weight", min=0.0, help="speech: weight of a contrastive term on f (batches of segment pairs; f of each segment must pick out its partner's among the batch's other recordings, as C-DSVAE contrasts its static latent). Not in the paper; 0 = off (the speech preset has 30)."),
    contrast_temperature: Optional[float] = typer.Option(None, "--contrast-temperature", min=0.0, help="speech, with --contrast-weight or --adversary-weight: temperature of the cosine similarities (default 0.1)."),
    adversary_weight: Optional[float] = typer.Option(None, "--adversary-weight", min=0.0, help="speech: strength of a same-recording adversary on z (batches of segment pairs; a small network learns to pick out each segment's partner from z alone, and the encoder, through gradient reversal, to make that impossible, so the voice and channel stay out of z). Not in the paper; 0 = off."),
    decorrelation_weight: Optional[float] = typer.Option(None, "--decorrelation-weight", min=0.0, help="speech: weight of a same-recording decorrelation term on z (batches of segment pairs; the cross-correlation of the two segments' time-averaged z, standardised over the batch, is pushed to zero, so z's utterance mean stops naming the speaker). Not in the paper; 0 = off."),
    pair_weight: Optional[float] = typer.Option(None, "--pair-weight", min=0.0, help="speech: weight of the same-recording term (batches of segment pairs from one utterance; each segment also decoded with its partner's f, so f keeps only what the recording shares: the voice). Not in the paper; 0 = the paper's ELBO."),
    channel: Optional[float] = typer.Option(None, "--channel", min=0.0, help="speech: hear each training segment through its own random smooth channel (a log gain curve of 4 cosine terms, each up to +-W; pair partners draw apart), so the recording set-up stops telling segments of one recording from others. Not in the paper; 0 = off."),
    warp: Optional[float] = typer.Option(None, "--warp", min=0.0, help="speech: stretch each training segment's frequency axis by a random factor in [1/(1+W), 1+W] (vocal tract length perturbation: new voices from the same recordings, so f meets more speakers). Default: the preset's (speech 0.2, else 0 = off)."),
    z_centred: Optional[bool] = typer.Option(None, "--centred-z/--no-centred-z", help="speech: z's encoder sees each frame minus the segment's mean frame, so the voice must come from f."),
    kl_warmup: Optional[int] = typer.Option(None, "--kl-warmup", min=0, help="Steps over which the KL weights ramp up from 0."),
    static_first: Optional[int] = typer.Option(None, "--static-first", min=0, help="Decode from f alone (z hidden) for the first N steps, so f learns the whole look before z learns the motion. Not in the paper; 0 = off. Default: the preset's (default: 600; none when starting --init-from a trained model)."),
    lr_schedule: Optional[str] = typer.Option(None, "--lr-schedule", help="constant | cosine (anneals the learning rate to 0 over --steps) | cosine-time (to 0 by the end of --minutes or --steps, whichever comes first). Default: constant."),
    log_every: Optional[int] = typer.Option(None, "--log-every", min=1, help="Steps between metrics.jsonl lines (default 10)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto (bf16 autocast on CUDA, else fp32) | fp32 | bf16 (CUDA, or a CPU with native bf16: AVX512-BF16 or AMX, where its steps run faster). Default: auto."),
    compile_model: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model for training (worth it on CUDA). Default: off."),
    fit_prior: Optional[bool] = typer.Option(None, "--fit-prior/--no-fit-prior", help="At the end, fit p(f) to the training sequences' aggregate posterior (a full-covariance Gaussian; the ELBO's best p(f) for the trained encoder), so generated f land where the decoder was trained. Default: on; off keeps the paper's N(0, I)."),
    device: str = DeviceOption,
) -> None:
    """Train a model. Example: dsae train --data sprites --out runs/sprites --minutes 60

    Speech: dsae train --data speech:LibriSpeech/train-clean-100 --out runs/speech --minutes 15

    Several processes (CPU cores or GPUs), one run: torchrun --nproc_per_node=N -m dsae_cli train ... (--batch-size is their total).
    """
    from dsae_cli.errors import DsaeError, cli_errors

    with cli_errors():
        if (out is None) == (resume is None):
            raise DsaeError("give exactly one of --out RUN_DIR (new run) or --resume RUN_DIR (continue a run)")
        if init_from is not None and resume is not None:
            raise DsaeError("--init-from starts a new run; it cannot be combined with --resume")
        if modality is not None and modality not in ("video", "speech"):
            raise DsaeError(f"unknown --modality {modality!r}; use video or speech")
        if posterior is not None and posterior not in ("factorised", "full"):
            raise DsaeError(f"unknown --posterior {posterior!r}; use factorised or full")
        if dynamics is not None and dynamics not in ("stochastic", "lstm-f", "lstm-c"):
            raise DsaeError(f"unknown --dynamics {dynamics!r}; use stochastic, lstm-f or lstm-c")
        if precision is not None and precision not in ("auto", "fp32", "bf16"):
            raise DsaeError(f"unknown --precision {precision!r}; use auto, fp32 or bf16")
        from dsae_cli.runtime import resolve_device
        from dsae_cli.training import run_training

        model_overrides = {k: v for k, v in dict(posterior=posterior, static_pool=static_pool, f_dim=f_dim, z_dim=z_dim, conv_width=conv_width, z_conv_width=z_conv_width, beta_f=beta_f, beta_z=beta_z, likelihood=likelihood, likelihood_scale=likelihood_scale, likelihood_components=likelihood_components, z_colour_blind=colour_blind_z, z_input_size=z_input_size, z_silhouette=z_silhouette, decoder_film=decoder_film, decoder_palette=decoder_palette, film_hidden=film_hidden, decoder_refine=decoder_refine, cycle_weight=cycle_weight, pair_weight=pair_weight, contrast_weight=contrast_weight, contrast_temperature=contrast_temperature, adversary_weight=adversary_weight, decorrelation_weight=decorrelation_weight, dynamics=dynamics, z_centred=z_centred).items() if v is not None}
        train_overrides = {
            k: v
            for k, v in dict(
                steps=steps, minutes=minutes, batch_size=batch_size, lr=lr, seed=seed, checkpoint_every=checkpoint_every,
                eval_every=eval_every, preview_every=preview_every, kl_warmup=kl_warmup, static_first=static_first, lr_schedule=lr_schedule,
                log_every=log_every, precision=precision, warp=warp, channel=channel, compile=compile_model, fit_f_prior=fit_prior,
            ).items()
            if v is not None
        }  # fmt: skip
        train_overrides["device"] = resolve_device(device)
        if resume is not None and model_overrides:
            raise DsaeError("model options cannot change when resuming; drop them or start a new run")
        summary = run_training(
            data, out, resume, preset, model_overrides, train_overrides, log=_log, progress_factory=_rich_progress, modality=modality, init_from=init_from
        )
        if summary.get("rank", 0) != 0:
            return  # under torchrun only rank 0 reports
        last = summary["last"] or {}
        state = "stopped (Ctrl-C or SIGTERM) at" if summary["interrupted"] else "finished at"
        _log(
            f"{state} step {summary['step']} after {summary['elapsed_s'] / 60:.1f} min; loss {last.get('loss', float('nan')):.1f}, "
            f"best validation loss {summary['best_val']:.1f}; model in {summary['run_dir']} (best: {summary['run_dir']}/best)"
        )


def _log(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True, highlight=False, emoji=False).print(msg, markup=False)


@contextmanager
def _rich_progress(total: int, start: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
    ) as bar:  # fmt: skip
        task = bar.add_task("train", total=total, completed=start, info="")

        def update(step: int, out: dict, rate: float) -> None:
            info = f"loss {out['loss']:.1f} recon {out['recon']:.1f} kl_f {out['kl_f']:.1f} kl_z {out['kl_z']:.1f} {rate:.0f} seq/s"
            bar.update(task, completed=step, info=info)

        yield update
