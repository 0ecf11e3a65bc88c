"""The self-supervised GAN put together, and its checkpoint.

One checkpoint (stage ``train_selfsup_gan``) holds the generator, the projection discriminator and a copy of the
frozen ``contrastive`` encoders the generator is conditioned on, so that it draws a face from a spectrogram alone.
Its header names the family (``selfsup``), the stage (``gan``), the image size, the noise width and the
condition width (the contrastive embedding width), and the hash of the contrastive checkpoint it was trained on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.faces.generator import check_family
from pipeline.families.contrastive.model import ContrastiveModel
from pipeline.families.contrastive.model import build as build_contrastive
from pipeline.families.selfsup.modules import Generator, ProjectionDiscriminator

FAMILY = "selfsup"
STAGE = "gan"
ARCH = "selfsup_gan"


def noise(batch: int, noise_dim: int, seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(batch, noise_dim)`` standard normal noise from ``seed`` alone: row i is the same for any batch size, so
    one seed is one z whatever voices it is drawn with."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(batch, noise_dim, generator=generator).to(device)


def build(config: dict[str, Any]) -> nn.ModuleDict:
    """The generator, the discriminator and the (frozen) contrastive encoders a config describes."""
    encoders = build_contrastive(config["contrastive"])
    cond = encoders.embed_dim
    size = int(config["image_size"])
    return nn.ModuleDict({
        "generator": Generator(int(config["noise_dim"]), cond, size, int(config["generator_width"])),
        "discriminator": ProjectionDiscriminator(cond, size, tuple(config["discriminator_widths"])),
        "encoders": encoders,
    })


def draw(generator: Generator, encoders: ContrastiveModel, specs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Faces ``(B, 3, S, S)`` in [0, 1]: G(z, c) with c the contrastive speech embedding of the whole clip."""
    return generator(z, encoders.embed_speech(specs).pooled)


def load(path: str | Path, image_size: int | None = None,
         device: torch.device | str = "cpu") -> tuple[nn.ModuleDict, dict[str, Any]]:
    """A ``train_selfsup_gan`` checkpoint's networks (eval mode) and header; another family's checkpoint, another
    image size, or a header whose condition width is not its encoders' is refused in one sentence."""
    from pipeline.faces.generator import GeneratorError
    from pipeline.training.checkpoints import load_built

    def build_checked(header: dict[str, Any]) -> nn.Module:
        check_family(header, path, FAMILY, image_size)
        if header.get("stage") != STAGE:
            raise GeneratorError(f"{path} is written by selfsup's {header.get('stage')} stage, not by "
                                 f"train_selfsup_gan")
        width = int(header["config"]["contrastive"]["embed_dim"])
        if int(header.get("cond_dim", -1)) != width:
            raise GeneratorError(f"{path} says its generator takes {header.get('cond_dim')}-d conditions, but its "
                                 f"contrastive encoders give {width}-d embeddings")
        return build(header["config"])

    model, header = load_built(path, build_checked)
    model.to(device)
    return model, header
