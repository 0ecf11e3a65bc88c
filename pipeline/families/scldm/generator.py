"""SCLDM as a face generator (``pipeline.faces.generator``): the frozen contrastive speech embedding c of the whole
clip, DDIM from seeded noise (scaled by the sampler's temperature) with classifier-free guidance to a residual latent, the prior latent added back, the
autoencoder's decoder.

``faces(specs, seed)`` draws row i's starting noise from ``seed`` (plus the sampler's own seed) alone, so that one
voice drawn with seeds 0, 1, 2, ... shows what the noise changes, and several voices drawn one at a time with one
seed share their noise. ``matching_embeddings`` gives the contrastive encoders' view, as for the self-supervised
family.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.faces.generator import FaceGenerator, check_specs
from pipeline.families.scldm.model import FAMILY, load_diffusion, read_sampler
from pipeline.families.scldm.modules import ddim_sample, from_residual


def noise(batch: int, shape: list[int], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(batch, *shape)`` standard normal noise from ``seed`` alone (row i is the same for any batch size)."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(batch, *shape, generator=generator).to(device)


class ScldmGenerator(FaceGenerator):
    """SCLDM's trained diffusion model with its sampler's settings (``scldm_sample``'s ``sampler.json``, or
    ``settings`` given directly)."""

    family = FAMILY

    def __init__(self, checkpoint: str | Path, sampler: str | Path | dict | None = None,
                 device: torch.device | str = "cpu", image_size: int | None = None):
        self.device = torch.device(device)
        nets, header = load_diffusion(checkpoint, image_size=image_size, device=self.device)
        nets.eval()
        nets.requires_grad_(False)
        self.denoiser, self.autoencoder, self.encoders = nets["denoiser"], nets["autoencoder"], nets["encoders"]
        self.prior = nets["prior"].latent
        self.header = header
        self.settings = (dict(sampler) if isinstance(sampler, dict) else read_sampler(sampler) if sampler
                         else {"ddim_steps": 25, "guidance_scale": 1.0, "temperature": 1.0, "seed": 0})
        self.image_size = int(header["image_size"])
        self.latent_shape = [int(x) for x in header["latent_shape"]]
        self.scaling_factor = float(header["scaling_factor"])
        self.noise_dim = int(np.prod(self.latent_shape))
        self.description = (f"SCLDM (contrastive {self.encoders.embed_dim}-d speech embedding, "
                            f"{'x'.join(map(str, self.latent_shape))} latents, "
                            f"{'face prior' if header.get('prior', True) else 'no prior'}, DDIM "
                            f"{self.settings['ddim_steps']} steps, guidance {self.settings['guidance_scale']:g}, "
                            f"{self.image_size} px)")
        self.modules = (self.encoders.speech, self.denoiser, self.autoencoder.decoder,
                        self.autoencoder.post_quant_conv)

    def latents(self, c: torch.Tensor, seed: int) -> torch.Tensor:
        """Scaled latents (prior added back) for conditions ``c``, the noise from ``seed``."""
        start = noise(len(c), self.latent_shape, seed + self.settings["seed"], self.device) * float(
            self.settings.get("temperature", 1.0))
        residual = ddim_sample(self.denoiser, dict(self.header["scheduler"]), c, start,
                               self.settings["ddim_steps"], self.settings["guidance_scale"])
        return from_residual(residual, self.prior)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Faces ``(B, 3, S, S)`` in [0, 1] of scaled latents."""
        images = self.autoencoder.decode(latents / self.scaling_factor).sample
        return ((images + 1) / 2).clamp(0, 1)

    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        c = self.encoders.embed_speech(specs).pooled
        return self.decode(self.latents(c, seed))

    @torch.no_grad()
    def matching_embeddings(self, specs: np.ndarray | torch.Tensor, faces: np.ndarray,
                            batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The contrastive encoders' unit embeddings of voices and of true faces (uint8 ``(N, H, W, 3)``)."""
        return self.encoders.matching_embeddings(check_specs(specs), faces, self.device, batch_size)
