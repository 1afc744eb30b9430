"""Model configuration: one dataclass with a comment on every field.

A checkpoint stores ``dataclasses.asdict(config)`` next to the weights, so it rebuilds its own
model; :meth:`DSAEConfig.from_dict` fills fields that older checkpoints lack with defaults and
drops options that no longer exist, provided they hold the value that left them switched off.
Named recipes (sizes and training settings) live in ``dsae_cli/recipes/*.toml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

MODALITIES = ("video", "speech")
POSTERIORS = ("factorised", "full")
DYNAMICS = ("stochastic", "lstm-f", "lstm-c")
LIKELIHOODS = ("bernoulli", "gaussian", "mixture")
F_PRIORS = ("standard", "fitted")

# Options older checkpoints may carry, each with the value that left it switched off: such a key is
# dropped on loading; any other value describes a model this code cannot rebuild.
REMOVED_OPTIONS: dict[str, object] = {
    "decoder_palette": 0,
    "film_hidden": 0,
    "decoder_refine": 0,
    "adversary_weight": 0.0,
    "decorrelation_weight": 0.0,
    "z_centred": False,
    "z_colour_blind": False,
    "static_pool": "last",
    "contrast_temperature": 0.1,
}
# Values of remaining options that older checkpoints may carry but this code cannot rebuild.
REMOVED_VALUES: dict[str, tuple] = {"likelihood": ("laplace",)}


def config_from_dict(cls, d: dict, what: str = "config fields"):
    """Rebuild a config dataclass from a saved dict; missing keys take defaults, unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}")
    return cls(**d)


def _removed(name: str, value: object) -> ValueError:
    return ValueError(
        f"this model uses the removed option {name}={value!r} (see docs/experiments.md); retrain it with a current recipe"
    )


@dataclass
class DSAEConfig:
    modality: str = "video"  # "video": RGB frames; "speech": log-magnitude spectrogram frames
    seq_len: int = 8  # T, frames per sequence the model is trained on
    frame_size: int = 64  # video: frames are frame_size x frame_size (a multiple of 16)
    channels: int = 3  # video: colour channels per frame
    n_bins: int = 201  # speech: frequency bins per spectrogram frame
    f_dim: int = 256  # size of the static latent f (content)
    z_dim: int = 32  # size of each dynamic latent z_t (motion)
    hidden_dim: int = 256  # hidden size of every LSTM/RNN (encoders and the learned prior)
    feature_dim: int = 256  # size of the per-frame feature the frame encoder produces
    conv_width: int = 64  # video: channels of the first conv layer (doubles per layer, 4 layers)
    posterior: str = "full"  # "factorised": q(z_t | x_t); "full": q(z_1:T | f, x_1:T)
    dynamics: str = "stochastic"  # "stochastic": the DSAE's z_1:T with a learned LSTM prior; "lstm-f" / "lstm-c":
    #   the paper's deterministic baselines, one z ~ N(0, I) per sequence (q(z | x_1:T) from a bidirectional
    #   LSTM) driving an LSTM whose state h_t the decoder reads with f: h_0 = z, no input (lstm-f), or
    #   h_0 = 0 and z the input at every step (lstm-c)
    likelihood: str = "bernoulli"  # p(x_t | z_t, f): "bernoulli" (video), "gaussian", or "mixture" (video): at
    #   every pixel a mixture of likelihood_components Gaussians, each with its own colour and weight from the
    #   decoder and the fixed scale likelihood_scale, so an uncertain edge pixel is one colour or another
    #   rather than their blend; decoded frames show each pixel's most probable component's colour
    likelihood_scale: float = 1.0  # gaussian, mixture: fixed standard deviation of p(x_t | z_t, f) (of each component)
    likelihood_components: int = 3  # mixture: Gaussians per pixel (the decoder draws components x (channels + 1) maps)
    beta_f: float = 1.0  # weight of KL(q(f) || p(f)) in the loss; 1 is the paper's ELBO
    beta_z: float = 1.0  # weight of sum_t KL(q(z_t) || p(z_t | z_<t)); 1 is the paper's ELBO
    decoder_film: bool = False  # video: f reaches the frame decoder only through per-channel scales and
    #   shifts of every layer (FiLM); the spatial layout comes from z_t alone
    decoder_f_layout: bool = False  # video, with decoder_film: f also enters the decoder's first linear layer, so it
    #   can lay out a still background's pattern (stripes, a room) and not only colour it; z still places the figure
    decoder_object: bool = False  # video, Gaussian or Bernoulli: the decoder draws the background from [z_t, f]
    #   and the figure from [z_t, f] on a canvas of its own (half-width object_scale) that z_t and f place in
    #   the frame and lay over the background by an opacity the canvas also draws; the outline is learned once
    #   for every position. Replaces decoder_film and decoder_f_layout
    object_scale: float = 0.5  # decoder_object: the canvas's half-width as a share of the frame's;
    #   f_object_view: the window's
    f_object_view: bool = False  # video: f's encoder also sees, in every frame, a window of half-width
    #   object_scale that follows what moves (the centroid of z_moving's mask; the centre where nothing moves),
    #   with that mask as a fourth channel, through an encoder of its own whose features are added to the frame's
    f_figure_dim: int = 0  # video, with decoder_object: only f's first f_figure_dim values reach the figure's
    #   canvas and only the rest reach the background, so f describes the figure apart from what it was seen
    #   over (the KL term keeps each part to what its drawing needs); 0 = all of f reaches both
    z_conv_width: int = 0  # video, with z's own frame encoder (z_silhouette or z_input_size): the channels of
    #   its first conv layer; 0 = conv_width. A narrow z encoder can read pose but little of a figure's shape
    z_input_size: int = 0  # video: z's own frame encoder sees frames average-pooled to this size (e.g. 16):
    #   pose survives, the fine shapes that identify a character do not; 0 = full frames
    z_silhouette: bool = False  # video: z's own frame encoder sees only the figure's silhouette (where a frame
    #   is not background; soft for decoded frames), so no colour or inner detail of a character reaches z
    z_moving: bool = False  # video: z's own frame encoder sees only what moves: where each frame differs from
    #   its sequence's temporal median, colour-blind; assumes nothing about the background or the palette
    moving_weight: float = 0.0  # video: training adds this many times the reconstruction term of what moves
    #   (the mask of z_moving: where a frame differs from its sequence's temporal median) to the loss (not in
    #   the paper; 0 = off), so a small moving figure weighs more against a large still background; the ELBO
    #   reported is unchanged
    f_prior: str = "standard"  # p(f): "standard" = N(0, I) (the paper); "fitted" = N(m, S), a full-covariance
    #   Gaussian fitted after training to the aggregate posterior of f over the training sequences (the
    #   ELBO's best Gaussian p(f) for the trained encoder), so f ~ p(f) lands where the decoder was trained
    f_mmd_weight: float = 0.0  # weight of a term that matches the aggregate posterior of f to p(f) = N(0, I)
    #   (not in the paper; 0 = off): the maximum mean discrepancy between a batch's f samples and as many
    #   draws of N(0, I) (InfoVAE, Zhao et al. 2019; WAE-MMD, Tolstikhin et al. 2018), so that f ~ N(0, I)
    #   lands where the decoder was trained
    prior_components: int = 1  # p(z_t | z_<t): a mixture of this many diagonal Gaussians (1 = the paper's
    #   Gaussian); a mixture can hold several motions at one step instead of their average. KL(q(z) || p(z))
    #   is then estimated from the posterior's sample
    cycle_weight: float = 0.0  # weight of the latent cycle term (not in the paper; 0 = the paper's ELBO):
    #   decode another sequence's f (or an f ~ p(f)) with this sequence's z_1:T, encode the result again,
    #   and score how far the new posterior means land from the latents that made it (objectives.cycle_loss)
    cycle_floor: float = 0.0  # the cycle term's yardstick for each latent: its posterior standard deviation, widened
    #   by this share of the batch's spread of that latent's posterior means (sqrt(std^2 + (share * spread)^2)),
    #   so that a posterior that narrows cannot make the term, and its pull, grow without bound (0: the posterior's
    #   standard deviation alone)
    pair_weight: float = 0.0  # speech: weight of the same-recording term (not in the paper; 0 = the paper's
    #   ELBO): training batches come as pairs of segments of one utterance, and each segment is also
    #   reconstructed from its own z_1:T with its partner's f, so f keeps what the whole recording shares (the
    #   voice, the channel) and what is said stays in z (after the FHVAE's utterance-level latent, Hsu et al. 2017)
    contrast_weight: float = 0.0  # speech: weight of a contrastive term on f (not in the paper; 0 = off): in a
    #   batch of segment pairs, the posterior mean of f of each segment must pick out its partner's among the
    #   batch's other recordings (InfoNCE on cosine similarities, both ways), as C-DSVAE (Bai et al. 2021)
    #   contrasts its static latent; the pairs are those of pair_weight, which may be 0 here

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, not {self.modality!r}")
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, not {self.posterior!r}")
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"dynamics must be one of {DYNAMICS}, not {self.dynamics!r}")
        if self.f_prior not in F_PRIORS:
            raise ValueError(f"f_prior must be one of {F_PRIORS}, not {self.f_prior!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {self.likelihood!r}")
        if self.modality == "video" and (self.frame_size % 16 or self.frame_size < 16):
            raise ValueError(f"frame_size must be a multiple of 16, not {self.frame_size}")
        for name in ("seq_len", "f_dim", "z_dim", "hidden_dim", "feature_dim", "conv_width", "n_bins"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be positive")
        if self.z_conv_width < 0 or (self.z_conv_width and not (self.modality == "video" and self.z_reduced_view)):
            raise ValueError("z_conv_width needs a video model whose z has its own frame encoder (z_silhouette, z_moving or z_input_size)")
        if self.z_input_size and (self.z_input_size % 16 or self.frame_size % self.z_input_size):
            raise ValueError("z_input_size must be a multiple of 16 that divides frame_size (or 0)")
        if self.likelihood_scale <= 0:
            raise ValueError("likelihood_scale must be positive")
        if self.beta_f < 0 or self.beta_z < 0:
            raise ValueError("beta_f and beta_z must not be negative")
        if self.z_reduced_view and self.modality != "video":
            raise ValueError("z_silhouette, z_moving and z_input_size apply to video models only")
        if self.z_silhouette and self.z_moving:
            raise ValueError("z_silhouette and z_moving are two views of z; choose one")
        if self.decoder_f_layout and not self.decoder_film:
            raise ValueError("decoder_f_layout needs decoder_film (without FiLM, f enters the linear layer anyway)")
        if self.decoder_object and (self.modality != "video" or self.likelihood == "mixture"):
            raise ValueError("decoder_object needs a video model with a gaussian or bernoulli likelihood")
        if self.decoder_object and self.decoder_film:
            raise ValueError("decoder_object has a decoder of its own; leave decoder_film off")
        if self.f_object_view and self.modality != "video":
            raise ValueError("f_object_view applies to video models only")
        if self.f_figure_dim and not self.decoder_object:
            raise ValueError("f_figure_dim needs decoder_object (a figure's canvas over a background)")
        if self.f_figure_dim and not 0 < self.f_figure_dim < self.f_dim:
            raise ValueError("f_figure_dim must be between 0 and f_dim, leaving some of f to the background")
        if not 0 < self.object_scale <= 1:
            raise ValueError("object_scale must be in (0, 1]")
        if self.moving_weight < 0:
            raise ValueError("moving_weight must not be negative")
        if self.moving_weight and self.modality != "video":
            raise ValueError("moving_weight applies to video models only")
        if self.f_mmd_weight < 0:
            raise ValueError("f_mmd_weight must not be negative")
        if self.prior_components < 1:
            raise ValueError("prior_components must be at least 1")
        if self.cycle_weight < 0:
            raise ValueError("cycle_weight must not be negative")
        if self.cycle_floor < 0:
            raise ValueError("cycle_floor must not be negative")
        if self.pair_weight < 0:
            raise ValueError("pair_weight must not be negative")
        if self.pair_weight and self.modality != "speech":
            raise ValueError("pair_weight applies to speech models only (pairs are segments of one utterance)")
        if self.contrast_weight < 0:
            raise ValueError("contrast_weight must not be negative")
        if self.contrast_weight and self.modality != "speech":
            raise ValueError("contrast_weight applies to speech models only (pairs are segments of one utterance)")
        if self.likelihood == "mixture" and self.modality != "video":
            raise ValueError("the mixture likelihood applies to video models only")
        if self.likelihood_components < 1:
            raise ValueError("likelihood_components must be positive")

    @property
    def paired(self) -> bool:
        """Whether training batches come as pairs of segments of one recording."""
        return self.pair_weight > 0 or self.contrast_weight > 0

    @property
    def z_reduced_view(self) -> bool:
        """Whether z's conv frame encoder is its own, on a reduced view of the frames (video)."""
        return bool(self.z_input_size or self.z_silhouette or self.z_moving)

    @property
    def frame_shape(self) -> tuple[int, ...]:
        if self.modality == "video":
            return (self.channels, self.frame_size, self.frame_size)
        return (self.n_bins,)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DSAEConfig":
        """Rebuild a saved config. Removed options at their neutral value are dropped; at any other
        value, or a removed value of a remaining option, the model cannot be rebuilt: ValueError."""
        d = dict(d)
        for name, neutral in REMOVED_OPTIONS.items():
            if name in d:
                value = d.pop(name)
                if value != neutral:
                    raise _removed(name, value)
        for name, values in REMOVED_VALUES.items():
            if d.get(name) in values:
                raise _removed(name, d[name])
        return config_from_dict(cls, d, "config fields")
