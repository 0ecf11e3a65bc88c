"""The self-supervised GAN as a face generator (``pipeline.faces.generator``): the frozen contrastive speech
embedding c of the whole clip, noise z from the seed, G(z, c).

``faces(specs, seed)`` draws one z per row from ``seed`` alone (``pipeline.families.selfsup.model.noise``): a
batch of one voice drawn with seeds 0, 1, 2, ... shows what z changes; several voices drawn one at a time with one
seed share their z. ``matching_embeddings`` gives the family's own encoders' view of voices and true faces, for the
comparison's K-way matching on real faces.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.faces.generator import FaceGenerator, check_specs
from pipeline.families.selfsup.model import FAMILY, load, noise


class SelfsupGenerator(FaceGenerator):
    """The self-supervised GAN's trained generator, loaded from a ``train_selfsup_gan`` checkpoint."""

    family = FAMILY

    def __init__(self, checkpoint: str | Path, device: torch.device | str = "cpu", image_size: int | None = None):
        self.device = torch.device(device)
        nets, header = load(checkpoint, image_size=image_size, device=self.device)
        nets.eval()
        nets.requires_grad_(False)
        self.generator, self.encoders = nets["generator"], nets["encoders"]
        self.image_size = int(header["image_size"])
        self.noise_dim = int(header["noise_dim"])
        self.description = (f"self-supervised GAN (contrastive {self.encoders.embed_dim}-d speech embedding + "
                            f"{self.noise_dim}-d noise, {self.image_size} px)")
        self.modules = (self.encoders.speech, self.generator)

    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        c = self.encoders.embed_speech(specs).pooled
        return self.generator(noise(len(c), self.noise_dim, seed, self.device), c)

    @torch.no_grad()
    def matching_embeddings(self, specs: np.ndarray | torch.Tensor, faces: np.ndarray,
                            batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """The contrastive encoders' unit embeddings of voices (spectrograms) and of true faces (uint8
        ``(N, H, W, 3)``): ``(speech [N, D], faces [N, D])``, float32."""
        return self.encoders.matching_embeddings(check_specs(specs), faces, self.device, batch_size)
