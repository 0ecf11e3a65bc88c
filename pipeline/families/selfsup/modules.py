"""The self-supervised GAN's networks as pure ``nn.Module``s and its losses (no I/O).

Nothing here draws random numbers of its own: weights come from PyTorch's initialisers, so ``torch.manual_seed``
before construction makes them reproducible.

- ``Generator``: noise ``z (B, noise_dim)`` and condition ``c (B, cond_dim)`` (the frozen contrastive speech
  embedding, a unit vector) → faces ``(B, 3, S, S)`` in [0, 1], S = 4·2^k.
- ``ProjectionDiscriminator``: faces in [0, 1] and ``c`` → one logit per face: ``ψ(φ(x)) + ⟨V ĉ, φ(x)⟩``
  (Miyato & Koyama 2018, the class embedding replaced by a linear map of the continuous ``c``), every weight
  spectrally normalised (Miyato et al. 2018).

Both take the unit ``c`` scaled by √cond_dim (``ĉ``, entries of about unit size, like z's): a unit 128-d c
beside a standard normal z would reach the generator's first layer about 11 times weaker than the noise, and
the spectrally normalised V would cap the projection term at |φ|. Measured on the demo, the scaling and
transposed convolutions (below) took the probe's gender agreement of the drawn faces from 0.76 to 0.82–0.94.
- ``hinge_discriminator_loss``, ``hinge_generator_loss``, ``identity_loss``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


def reachable_size(size: int) -> int:
    """The largest 4·2^k (k ≥ 1) not above ``size``: the side the generator draws for crops of ``size`` px."""
    if size < 8:
        raise ValueError(f"the generator draws at least 8-px faces, the crops are {size} px.")
    side = 8
    while side * 2 <= size:
        side *= 2
    return side


def scaled_condition(c: torch.Tensor) -> torch.Tensor:
    """The unit condition scaled by √dim, so that its entries are of the size of a standard normal's."""
    return c * math.sqrt(c.shape[1])


class Generator(nn.Module):
    """DCGAN generator of ``[z; ĉ]``.

    ``Linear(noise_dim + cond_dim → 8·width·4·4)`` + BN + ReLU to a 4×4 map, then one block per doubling
    (``ConvTranspose2d`` 4×4 stride 2, BN, ReLU), halving the channels down to ``width``·8/2^k (at least
    ``width``//2), and a 3×3 convolution to RGB with a sigmoid. Transposed convolutions rather than nearest
    upsampling and a 3×3 convolution: 2.25 times fewer multiply-adds per block (the work is done at the input's
    resolution), 40 % less time per training step on the demo's CPU, so more steps fit its share.
    """

    def __init__(self, noise_dim: int, cond_dim: int, image_size: int = 64, width: int = 32):
        super().__init__()
        if image_size < 8 or image_size % 4 or (image_size // 4) & (image_size // 4 - 1):
            raise ValueError(f"the generator draws 4·2^k-px faces (8, 16, 32, 64, 128, ...), not {image_size}.")
        self.noise_dim, self.cond_dim, self.image_size = int(noise_dim), int(cond_dim), int(image_size)
        blocks = (self.image_size // 4).bit_length() - 1
        channels = [max(width * 8 // 2 ** i, max(1, width // 2)) for i in range(blocks + 1)]
        self.first = channels[0]
        self.project = nn.Linear(self.noise_dim + self.cond_dim, self.first * 16, bias=False)
        self.project_norm = nn.BatchNorm2d(self.first)
        self.blocks = nn.Sequential(*(nn.Sequential(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=False),
                                                    nn.BatchNorm2d(b), nn.ReLU(inplace=True))
                                      for a, b in pairwise(channels)))
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or c.dim() != 2 or z.shape[1] != self.noise_dim or c.shape[1] != self.cond_dim \
                or z.shape[0] != c.shape[0]:
            raise ValueError(f"Generator expects z (B, {self.noise_dim}) and c (B, {self.cond_dim}), got "
                             f"{tuple(z.shape)} and {tuple(c.shape)}.")
        x = self.project(torch.cat([z, scaled_condition(c)], dim=1)).view(-1, self.first, 4, 4)
        x = self.blocks(F.relu(self.project_norm(x)))
        return torch.sigmoid(self.to_rgb(x))


class ProjectionDiscriminator(nn.Module):
    """Strided ``Conv2d(k4, s2)`` + LeakyReLU(0.2) per width of ``widths``, each spectrally normalised; features
    φ(x) summed over space; logit ``ψ(φ) + ⟨V ĉ, φ⟩`` with ψ and V spectrally normalised linear maps."""

    def __init__(self, cond_dim: int, image_size: int = 64, widths: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        if not widths:
            raise ValueError("ProjectionDiscriminator needs at least one convolution width.")
        if image_size < 2 ** len(widths):
            raise ValueError(f"{len(widths)} stride-2 convolutions need faces of at least {2 ** len(widths)} px, "
                             f"not {image_size}.")
        self.cond_dim = int(cond_dim)
        layers: list[nn.Module] = []
        for a, b in pairwise([3, *widths]):
            layers += [spectral_norm(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.real_fake = spectral_norm(nn.Linear(widths[-1], 1))
        self.projection = spectral_norm(nn.Linear(self.cond_dim, widths[-1], bias=False))

    def forward(self, faces: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        phi = self.features(faces * 2 - 1).sum(dim=(2, 3))
        return self.real_fake(phi).squeeze(1) + (self.projection(scaled_condition(c)) * phi).sum(dim=1)


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))`` (the hinge loss of SN-GAN and projection D)."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """``−mean(D(G(z, c), c))``."""
    return -fake_logits.mean()


def identity_loss(face_embeddings: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """``mean(1 − cos(F(G(z, c)), c))``: the frozen contrastive face encoder's embedding of the drawn face towards
    the voice's embedding (both unit vectors in the contrastive space)."""
    return (1 - F.cosine_similarity(face_embeddings, condition, dim=1)).mean()
