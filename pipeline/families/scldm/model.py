"""SCLDM's checkpoints and its sampler's settings file.

- The autoencoder's checkpoint (stage ``scldm_autoencoder``): ``pipeline.families.scldm.autoencoder``.
- The diffusion checkpoint (stage ``scldm_train``): the denoiser (its weights' moving average), a copy of the
  autoencoder, a copy of the frozen ``contrastive`` encoders and the prior latent, so that one file draws a face
  from a spectrogram. Its header also names the latent shape, the scaling factor, the training scheduler's
  config and the prediction type; a header whose autoencoder does not make its latent shape is refused in one
  sentence before anything is built.
- The sampler's settings (stage ``scldm_sample``, ``sampler.json``): DDIM steps, guidance scale, the starting noise's
  temperature and the seed offset.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.faces.generator import GeneratorError, check_family
from pipeline.families.contrastive.model import build as build_contrastive
from pipeline.families.scldm.autoencoder import (
    AUTOENCODER_ARCH,
    AUTOENCODER_STAGE,
    FAMILY,
    build_autoencoder_from,
    latent_shape,
    load_autoencoder,
)
from pipeline.families.scldm.modules import Denoiser

DIFFUSION_STAGE = "diffusion"
DIFFUSION_ARCH = "scldm_diffusion"
__all__ = ["AUTOENCODER_ARCH", "AUTOENCODER_STAGE", "DIFFUSION_ARCH", "DIFFUSION_STAGE", "FAMILY", "PriorLatent",
           "build_diffusion", "check_diffusion_header", "check_sampler", "latent_shape", "load_autoencoder",
           "load_diffusion", "read_sampler", "write_sampler"]


class PriorLatent(nn.Module):
    """The face prior in the scaled latent space, ``(C, H, W)`` (zeros when the family runs without a prior)."""

    def __init__(self, shape: list[int]):
        super().__init__()
        self.register_buffer("latent", torch.zeros(*shape))


def build_diffusion(config: dict[str, Any]) -> nn.ModuleDict:
    """The denoiser, the autoencoder, the (frozen) contrastive encoders and the prior latent of a config."""
    shape = latent_shape(config["autoencoder"])
    den = config["denoiser"]
    encoders = build_contrastive(config["contrastive"])
    return nn.ModuleDict({
        "denoiser": Denoiser(shape[1], shape[0], list(den["widths"]), encoders.embed_dim,
                             int(den.get("layers_per_block", 1)), bool(den.get("attention", True))),
        "autoencoder": build_autoencoder_from(config["autoencoder"]),
        "encoders": encoders,
        "prior": PriorLatent(shape),
    })


def check_diffusion_header(header: dict[str, Any], path: str | Path, image_size: int | None = None) -> None:
    """Refuse, in one sentence, a checkpoint that is not ``scldm_train``'s, or whose autoencoder does not make the
    latent shape its denoiser and prior were trained on."""
    check_family(header, path, FAMILY, image_size)
    if header.get("stage") != DIFFUSION_STAGE:
        raise GeneratorError(f"{path} is written by scldm's {header.get('stage')} stage, not by scldm_train")
    config = header["config"]
    try:
        made = latent_shape(config["autoencoder"])
    except ValueError as exc:
        raise GeneratorError(f"{path}: {exc}") from None
    said = [int(x) for x in header.get("latent_shape", [])]
    if made != said or [int(x) for x in config.get("latent_shape", [])] != said:
        raise GeneratorError(f"{path} holds a diffusion model of {'x'.join(map(str, said)) or 'no'} latents, but its "
                             f"autoencoder makes {'x'.join(map(str, made))} latents of "
                             f"{config['autoencoder']['image_size']}-px faces (retrain scldm_train on this "
                             f"autoencoder)")


def load_diffusion(path: str | Path, image_size: int | None = None,
                   device: torch.device | str = "cpu") -> tuple[nn.ModuleDict, dict[str, Any]]:
    """A ``scldm_train`` checkpoint's networks (eval mode) and header (see :func:`check_diffusion_header`)."""
    from pipeline.training.checkpoints import load_built

    def build_checked(header: dict[str, Any]) -> nn.Module:
        check_diffusion_header(header, path, image_size)
        return build_diffusion(header["config"])

    model, header = load_built(path, build_checked)
    model.to(device)
    return model, header


#: the sampler's keys and their meaning (``scldm_sample`` writes them, the generator reads them)
SAMPLER_KEYS = ("ddim_steps", "guidance_scale", "temperature", "seed")


def write_sampler(path: str | Path, ddim_steps: int, guidance_scale: float, seed: int,
                  temperature: float = 1.0) -> dict[str, Any]:
    """Write the sampler's settings (checked: at least one step, a guidance scale of 0 or more, a temperature above
    0)."""
    from pipeline.common.io import write_json

    settings = check_sampler({"ddim_steps": int(ddim_steps), "guidance_scale": float(guidance_scale),
                              "temperature": float(temperature), "seed": int(seed)}, path)
    write_json(path, settings)
    return settings


def check_sampler(settings: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The sampler's settings, or one sentence saying what is wrong with them."""
    missing = [k for k in SAMPLER_KEYS if k not in settings]
    if missing:
        raise GeneratorError(f"sampler settings {path} lack {', '.join(missing)} (rerun scldm_sample)")
    if int(settings["ddim_steps"]) < 1:
        raise GeneratorError(f"sampler settings {path} ask for {settings['ddim_steps']} DDIM steps; at least 1 is "
                             f"needed")
    if float(settings["guidance_scale"]) < 0:
        raise GeneratorError(f"sampler settings {path} have guidance scale {settings['guidance_scale']}; it must be "
                             f"0 or more")
    if not float(settings["temperature"]) > 0:
        raise GeneratorError(f"sampler settings {path} have temperature {settings['temperature']}; it must be above 0")
    return {"ddim_steps": int(settings["ddim_steps"]), "guidance_scale": float(settings["guidance_scale"]),
            "temperature": float(settings["temperature"]), "seed": int(settings["seed"])}


def read_sampler(path: str | Path) -> dict[str, Any]:
    """The sampler's settings from ``sampler.json``, checked."""
    path = Path(path)
    if not path.is_file():
        raise GeneratorError(f"sampler settings {path} not found (run scldm_sample)")
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise GeneratorError(f"sampler settings {path} are not JSON") from None
    if not isinstance(settings, dict):
        raise GeneratorError(f"sampler settings {path} are not a JSON object")
    return check_sampler(settings, path)
