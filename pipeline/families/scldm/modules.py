"""SCLDM's parts, pure functions and ``nn.Module``s (no file is read or written here).

- :func:`build_autoencoder`: a diffusers ``AutoencoderKL`` of ``len(widths)`` blocks, each but the last halving the
  side: an ``S``-px face becomes a ``(latent_channels, S / 2^(blocks-1), S / 2^(blocks-1))`` latent.
- :class:`Denoiser`: a diffusers ``UNet2DModel`` over the latents, conditioned on one global speech vector: the
  (unit) contrastive speech embedding, scaled by √d (its entries then have unit size, like the self-supervised
  GAN's) and projected by a linear layer to the U-Net's time-embedding width, added to the timestep's embedding
  (``class_embed_type="identity"``). The null condition of classifier-free guidance is the
  zero vector (a real embedding has norm 1).
- :func:`training_scheduler` / :func:`sampling_scheduler`: diffusers' ``DDPMScheduler`` for training and
  ``DDIMScheduler`` (from the same betas) for sampling, sample clipping off in both: the latents are not in [-1, 1].
- :func:`to_residual` / :func:`from_residual`: the face prior as a residual (the model learns z − z_prior; z_prior is
  added back before decoding), and :func:`prior_latent`, the prior latent as the weighted mean of latents.
- :func:`training_target`, :func:`guide`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: the schedulers' prediction types this family offers
PREDICTION_TYPES = ("epsilon", "v_prediction")


def latent_side(image_size: int, blocks: int) -> int:
    """Side of the latent of an ``image_size``-px face through ``blocks`` autoencoder blocks (each but the last
    halves it); a size the blocks do not divide exactly is refused in one sentence (``ValueError``)."""
    factor = 2 ** (int(blocks) - 1)
    if int(blocks) < 1 or int(image_size) % factor:
        raise ValueError(f"an autoencoder of {blocks} blocks downsamples by {factor}, which does not divide the "
                         f"{image_size}-px faces (the latent side would be {int(image_size) / factor:g})")
    return int(image_size) // factor


def check_latent_size(image_size: int, blocks: int, latent_size: int) -> None:
    """Refuse, in one sentence, a requested latent side that ``blocks`` blocks do not make of ``image_size`` px."""
    side = latent_side(image_size, blocks)
    if side != int(latent_size):
        raise ValueError(f"a {latent_size}x{latent_size} latent does not divide {image_size}-px faces through "
                         f"{blocks} blocks (they give {side}x{side}; the side must be {image_size} / 2^(blocks-1))")


def build_autoencoder(image_size: int, widths: Sequence[int], latent_channels: int, layers_per_block: int = 1,
                      norm_groups: int = 8):
    """A diffusers ``AutoencoderKL`` for ``image_size``-px RGB faces in [-1, 1] (seed torch first)."""
    from diffusers import AutoencoderKL

    latent_side(image_size, len(widths))
    groups = _groups(widths, norm_groups)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(widths),
                         up_block_types=("UpDecoderBlock2D",) * len(widths),
                         block_out_channels=tuple(int(w) for w in widths), layers_per_block=int(layers_per_block),
                         latent_channels=int(latent_channels), norm_num_groups=groups, sample_size=int(image_size))


def _groups(widths: Sequence[int], wanted: int) -> int:
    """The largest group count ≤ ``wanted`` that divides every width (GroupNorm's requirement)."""
    for groups in range(int(wanted), 0, -1):
        if all(int(w) % groups == 0 for w in widths):
            return groups
    return 1


class Denoiser(nn.Module):
    """ε- or v-prediction U-Net over ``(channels, side, side)`` latents, conditioned on a global ``cond_dim`` vector
    (projected and added to the timestep embedding). ``forward(x, t, c)`` → the prediction, shaped like ``x``."""

    def __init__(self, side: int, channels: int, widths: Sequence[int], cond_dim: int, layers_per_block: int = 1,
                 attention: bool = True, norm_groups: int = 8):
        super().__init__()
        from diffusers import UNet2DModel

        widths = tuple(int(w) for w in widths)
        if side % 2 ** (len(widths) - 1):
            raise ValueError(f"a U-Net of {len(widths)} levels halves a {side}x{side} latent {len(widths) - 1} "
                             f"times, which {side} does not allow")
        self.side, self.channels, self.cond_dim = int(side), int(channels), int(cond_dim)
        time_dim = widths[0] * 4
        self.unet = UNet2DModel(sample_size=self.side, in_channels=self.channels, out_channels=self.channels,
                                block_out_channels=widths, down_block_types=("DownBlock2D",) * len(widths),
                                up_block_types=("UpBlock2D",) * len(widths), layers_per_block=int(layers_per_block),
                                norm_num_groups=_groups(widths, norm_groups), class_embed_type="identity",
                                add_attention=bool(attention))
        self.project = nn.Linear(self.cond_dim, time_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        return self.unet(x, t, class_labels=self.project(c.to(x.dtype) * self.cond_dim ** 0.5)).sample


def training_scheduler(train_timesteps: int, prediction_type: str, beta_schedule: str = "scaled_linear"):
    """diffusers' ``DDPMScheduler`` of the training run: ``train_timesteps`` steps, the given prediction type, sample
    clipping off (latents are not in [-1, 1])."""
    from diffusers import DDPMScheduler

    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"prediction type {prediction_type!r} is not one of {', '.join(PREDICTION_TYPES)}")
    return DDPMScheduler(num_train_timesteps=int(train_timesteps), beta_schedule=beta_schedule,
                         beta_start=0.00085, beta_end=0.012, prediction_type=prediction_type, clip_sample=False)


def sampling_scheduler(training_config: dict, steps: int):
    """diffusers' ``DDIMScheduler`` on the training scheduler's betas and prediction type, ``steps`` steps
    (``trailing`` spacing: the last step starts from pure noise), clipping off, η = 0 (deterministic)."""
    from diffusers import DDIMScheduler

    if int(steps) < 1:
        raise ValueError(f"DDIM needs at least 1 sampling step, got {steps}")
    config = {k: v for k, v in dict(training_config).items() if not k.startswith("_")}
    scheduler = DDIMScheduler.from_config(config, clip_sample=False, timestep_spacing="trailing",
                                          set_alpha_to_one=False)
    scheduler.set_timesteps(int(steps))
    return scheduler


def to_residual(latent: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """What the diffusion model learns: the (scaled) latent minus the prior latent (broadcast over the batch)."""
    return latent - prior.to(latent)


def from_residual(residual: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """A sampled residual with the prior latent added back, ready to decode."""
    return residual + prior.to(residual)


def prior_latent(latents: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The face prior in latent space: the (weighted) mean of ``latents`` ``(N, C, H, W)`` → ``(C, H, W)``; with
    per-face ``weights`` (the priors stage's: one per speaker, split over its clips) the mean is ``Σ w z / Σ w``."""
    if weights is None:
        return latents.mean(dim=0)
    w = weights.to(latents).reshape(-1, *([1] * (latents.ndim - 1)))
    return (latents * w).sum(dim=0) / w.sum()


def training_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The regression target at timestep ``t``: the noise (ε-prediction) or the velocity (v-prediction)."""
    if scheduler.config.prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return noise


def guide(unconditional: torch.Tensor, conditional: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: u + scale · (c − u) (scale 0: unconditional; 1: conditional alone)."""
    return unconditional + float(scale) * (conditional - unconditional)


def drop_conditions(c: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """``c`` with each row replaced by the null (zero) condition with probability ``share`` (classifier-free
    guidance's training), the draws from ``generator`` (a seeded CPU generator)."""
    keep = (torch.rand(c.shape[0], generator=generator) >= float(share)).to(c.device, c.dtype)
    return c * keep[:, None]


@torch.no_grad()
def ddim_sample(denoiser: Denoiser, training_config: dict, c: torch.Tensor, start: torch.Tensor, steps: int,
                guidance_scale: float) -> torch.Tensor:
    """DDIM (η = 0) from the noise ``start`` ``(B, C, H, W)`` to a residual latent, conditioned on ``c`` ``(B, D)``
    with classifier-free guidance at ``guidance_scale`` (1: the conditional prediction alone, one U-Net call per
    step; otherwise the null and the real condition in one batch of 2B)."""
    if float(guidance_scale) < 0:
        raise ValueError(f"the guidance scale is {guidance_scale}; it must be 0 or more")
    scheduler = sampling_scheduler(training_config, steps)
    x = start * scheduler.init_noise_sigma
    null = torch.zeros_like(c)
    for t in scheduler.timesteps:
        if float(guidance_scale) == 1.0:
            out = denoiser(x, t, c)
        else:
            both = denoiser(torch.cat([x, x]), t, torch.cat([null, c]))
            out = guide(*both.chunk(2), guidance_scale)
        x = scheduler.step(out, t, x, eta=0.0).prev_sample
    return x
