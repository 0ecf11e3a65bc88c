"""Tiny checkpoints of the model families and of the judge, built directly (no training; well under a second).

``write_tiny_sf2f(path)`` writes an SF2F checkpoint as ``sf2f_fuser`` writes it (the family's header: ``family``,
``stage: fuser``, ``image_size``), with untrained tiny widths; ``write_tiny_selfsup(path)`` a self-supervised GAN
checkpoint as ``train_selfsup_gan`` writes it (its frozen contrastive encoders inside); ``write_tiny_scldm(path)``
an SCLDM diffusion checkpoint as ``scldm_train`` writes it (and its sampler's settings); ``write_tiny_judge(path)`` writes a trained-kind
judge checkpoint (``models.judge.JudgeResNet``, untrained tiny widths) as the ``judge`` stage writes it. Their
weights are seeded, so the same call writes the same bytes. They draw and embed faces of the right shapes; what
the faces look like is not the point.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

#: SF2F's architecture keys (as ``pipeline.families.sf2f.train.train_sf2f`` writes them), at tiny widths
TINY_SF2F_CONFIG: dict[str, Any] = {
    "encoder_channels": [8, 8], "embed_dim": 16, "decoder_width": 16, "image_size": 32, "fuser": True,
    "discriminator_widths": [8, 8], "discriminator_hidden": 16, "num_ids": 2,
}
#: the self-supervised GAN's architecture keys (as ``pipeline.families.selfsup.train.train_gan`` writes them)
TINY_SELFSUP_CONFIG: dict[str, Any] = {
    "noise_dim": 4, "generator_width": 4, "discriminator_widths": [4, 8], "image_size": 32,
    "contrastive": {"speech_channels": [8, 8], "face_widths": [8, 8], "embed_dim": 8, "image_size": 32},
}
#: SCLDM's diffusion checkpoint's architecture keys (as ``pipeline.families.scldm.train.train_diffusion`` writes them)
TINY_SCLDM_CONFIG: dict[str, Any] = {
    "autoencoder": {"image_size": 32, "widths": [4, 4], "latent_channels": 2, "layers_per_block": 1},
    "latent_shape": [2, 16, 16], "denoiser": {"widths": [8, 8], "layers_per_block": 1, "attention": False},
    "contrastive": {"speech_channels": [8, 8], "face_widths": [8, 8], "embed_dim": 8, "image_size": 32},
}
#: the judge's architecture keys (``models.judge.JudgeResNet``), at tiny widths
TINY_JUDGE_CONFIG: dict[str, Any] = {"width": 0.125, "embed_dim": 16, "blocks": 1}


def write_tiny_sf2f(path: str | Path, image_size: int = 32, fuser: bool = True, seed: int = 0) -> Path:
    """An untrained tiny SF2F checkpoint of ``image_size``-px faces at ``path`` (an ``sf2f_fuser`` one, or with
    ``fuser=False`` an ``sf2f_train`` one); returns ``path``."""
    from pipeline.families.sf2f.model import ARCH, FAMILY, build, bundle
    from pipeline.training.checkpoints import save_checkpoint

    config = {**TINY_SF2F_CONFIG, "image_size": int(image_size), "fuser": bool(fuser)}
    torch.manual_seed(seed)
    generator, discriminators = build(config)
    header = {"family": FAMILY, "stage": "fuser" if fuser else "train", "image_size": int(image_size),
              "identity": "speaker", "identities": int(config["num_ids"])}
    save_checkpoint(path, bundle(generator.eval(), discriminators.eval()), ARCH, config, header)
    return Path(path)


def write_tiny_selfsup(path: str | Path, image_size: int = 32, seed: int = 0) -> Path:
    """An untrained tiny ``train_selfsup_gan`` checkpoint of ``image_size``-px faces at ``path``; returns ``path``."""
    from pipeline.families.selfsup.model import ARCH, FAMILY, STAGE, build
    from pipeline.training.checkpoints import config_hash, save_checkpoint

    config = {**TINY_SELFSUP_CONFIG, "image_size": int(image_size)}
    torch.manual_seed(seed)
    width = int(config["contrastive"]["embed_dim"])
    header = {"family": FAMILY, "stage": STAGE, "image_size": int(image_size), "noise_dim": config["noise_dim"],
              "cond_dim": width, "contrastive": {"config_hash": config_hash(config["contrastive"]),
                                                 "embed_dim": width}}
    save_checkpoint(path, build(config).eval(), ARCH, config, header)
    return Path(path)


def write_tiny_scldm(path: str | Path, image_size: int = 32, seed: int = 0, sampler: str | Path | None = None,
                     ddim_steps: int = 3, guidance_scale: float = 2.0) -> Path:
    """An untrained tiny ``scldm_train`` checkpoint of ``image_size``-px faces at ``path`` (its prior latent a seeded
    random one) and, with ``sampler``, the sampler's settings file there; returns ``path``."""
    from pipeline.families.scldm.model import (
        DIFFUSION_ARCH,
        DIFFUSION_STAGE,
        FAMILY,
        build_diffusion,
        write_sampler,
    )
    from pipeline.families.scldm.modules import latent_side, training_scheduler
    from pipeline.training.checkpoints import config_hash, save_checkpoint

    autoencoder = {**TINY_SCLDM_CONFIG["autoencoder"], "image_size": int(image_size)}
    side = latent_side(int(image_size), len(autoencoder["widths"]))
    shape = [int(autoencoder["latent_channels"]), side, side]
    config = {**TINY_SCLDM_CONFIG, "autoencoder": autoencoder, "latent_shape": shape,
              "contrastive": {**TINY_SCLDM_CONFIG["contrastive"], "image_size": int(image_size)}}
    torch.manual_seed(seed)
    nets = build_diffusion(config).eval()
    nets["prior"].latent.normal_(0, 0.1)
    width = int(config["contrastive"]["embed_dim"])
    scheduler = {k: v for k, v in dict(training_scheduler(1000, "epsilon").config).items() if not k.startswith("_")}
    header = {"family": FAMILY, "stage": DIFFUSION_STAGE, "image_size": int(image_size), "latent_shape": shape,
              "scaling_factor": 1.0, "cond_dim": width, "prior": True, "prior_faces": 2, "scheduler": scheduler,
              "contrastive": {"config_hash": config_hash(config["contrastive"]), "embed_dim": width},
              "autoencoder": {"config_hash": config_hash(autoencoder)}}
    save_checkpoint(path, nets, DIFFUSION_ARCH, config, header)
    if sampler is not None:
        write_sampler(sampler, ddim_steps, guidance_scale, 0)
    return Path(path)


def write_tiny_judge(path: str | Path, image_size: int = 64, seed: int = 0) -> Path:
    """An untrained tiny judge checkpoint (``kind: trained``) for ``image_size``-px crops at ``path``; returns it."""
    from models import build_model
    from models.judge import ARCH
    from pipeline.training.checkpoints import save_checkpoint

    torch.manual_seed(seed)
    model = build_model(ARCH, TINY_JUDGE_CONFIG).eval()
    header = {"kind": "trained", "name": f"tiny untrained {ARCH}", "image_size": int(image_size)}
    save_checkpoint(path, model, ARCH, TINY_JUDGE_CONFIG, header)
    return Path(path)


__all__ = ["TINY_JUDGE_CONFIG", "TINY_SCLDM_CONFIG", "TINY_SELFSUP_CONFIG", "TINY_SF2F_CONFIG", "write_tiny_judge",
           "write_tiny_scldm", "write_tiny_selfsup", "write_tiny_sf2f"]
