"""SCLDM's face autoencoder (stage ``scldm_autoencoder``) and its checkpoint.

A diffusers ``AutoencoderKL`` trained on the face corpus's and the training clips' face crops (the face images
alone), to reconstruct each face from a sample of its posterior: L1 in [-1, 1] plus ``kl_weight`` · KL to the
standard normal (LDM's KL-regularised autoencoder, without its perceptual and GAN terms, which the demo's minute
cannot afford), in the loop every model uses (``pipeline.training.loop.fit``). Afterwards the latent scaling factor
is 1 / the standard deviation of the training clips' latents (posterior means), as LDM computes it. The checkpoint's
header names the family (``scldm``), the stage (``autoencoder``), the image size, the latent shape ``[C, H, W]``
and the scaling factor. Metrics: the reconstruction L1 (pixels in [0, 1]) on the test clips' faces, and a figure
of test faces over their reconstructions.

Apart from the diffusion model's code, so that an edit to the contrastive encoders or the U-Net does not retrain it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.faces.generator import GeneratorError, check_family
from pipeline.families.scldm.modules import (
    build_autoencoder,
    check_latent_size,
    latent_side,
)

FAMILY = "scldm"
AUTOENCODER_STAGE = "autoencoder"
AUTOENCODER_ARCH = "scldm_autoencoder"


def latent_shape(autoencoder_config: dict[str, Any]) -> list[int]:
    """``[C, H, W]`` of the latents the autoencoder a config describes makes (ValueError when its blocks do not
    divide its image size)."""
    side = latent_side(int(autoencoder_config["image_size"]), len(autoencoder_config["widths"]))
    return [int(autoencoder_config["latent_channels"]), side, side]


def build_autoencoder_from(config: dict[str, Any]) -> nn.Module:
    """The ``AutoencoderKL`` an autoencoder config describes."""
    return build_autoencoder(int(config["image_size"]), list(config["widths"]), int(config["latent_channels"]),
                             int(config.get("layers_per_block", 1)))


def check_autoencoder_header(header: dict[str, Any], path: str | Path) -> None:
    """Refuse, in one sentence, a checkpoint that is not ``scldm_autoencoder``'s."""
    check_family(header, path, FAMILY)
    if header.get("stage") != AUTOENCODER_STAGE:
        raise GeneratorError(f"{path} is written by scldm's {header.get('stage')} stage, not by scldm_autoencoder")


def load_autoencoder(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A ``scldm_autoencoder`` checkpoint's ``AutoencoderKL`` (eval mode) and header."""
    from pipeline.training.checkpoints import load_built

    def build_checked(header: dict[str, Any]) -> nn.Module:
        check_autoencoder_header(header, path)
        return build_autoencoder_from(header["config"])

    model, header = load_built(path, build_checked)
    model.to(device)
    return model, header


def _to_model(faces: torch.Tensor) -> torch.Tensor:
    return faces * 2 - 1


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def encode_faces(autoencoder: torch.nn.Module, faces: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Posterior means of faces ``(N, 3, S, S)`` in [0, 1] (unscaled latents)."""
    out = []
    for start in range(0, len(faces), batch_size):
        out.append(autoencoder.encode(_to_model(faces[start:start + batch_size])).latent_dist.mean)
    return torch.cat(out)


@torch.no_grad()
def split_faces(shards_dir: str | Path, split: str) -> tuple[list[str], torch.Tensor]:
    """Keys and faces ``(N, 3, S, S)`` in [0, 1] of one split's clips, in shard order."""
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit

    keys, faces = [], []
    for batch in make_loader(LabelFreeSplit(shards_dir, split), 64):
        keys += batch["key"]
        faces.append(batch["face"].float())
    return keys, torch.cat(faces)


def crop_size(shards_dir: str | Path) -> int:
    """Side of the train split's face crops."""
    from pipeline.data.label_free import LabelFreeSplit

    for item in LabelFreeSplit(shards_dir, "train"):
        return int(item["face"].shape[-1])
    raise TrainingError(f"the train split of {shards_dir} has no samples")


def reconstruction_figure(originals: torch.Tensor, reconstructions: torch.Tensor, path: str | Path) -> None:
    """A PNG of faces (top row) over their reconstructions (bottom row), 2-px gaps."""
    from PIL import Image

    from pipeline.common.io import atomic_path
    from pipeline.faces.generator import to_uint8

    top, bottom = to_uint8(originals), to_uint8(reconstructions)
    n, s = len(top), top.shape[1]
    canvas = np.full((2 * s + 6, n * (s + 2) + 2, 3), 255, dtype=np.uint8)
    for i in range(n):
        x = 2 + i * (s + 2)
        canvas[2:2 + s, x:x + s] = top[i]
        canvas[4 + s:4 + 2 * s, x:x + s] = bottom[i]
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def train_autoencoder(corpus_dir: str | Path, shards_dir: str | Path, out: str | Path, metrics_path: str | Path,
                      plots_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train the autoencoder (module docstring), write its checkpoint, metrics and figure; returns the metrics."""
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.datasets import SplitDataset
    from pipeline.training.checkpoints import save_checkpoint
    from pipeline.training.loop import (
        fingerprint,
        fit,
        resume_path_for,
        summary_metrics,
    )

    device = resolve_device(params["device"])
    crops = crop_size(shards_dir)
    widths = [int(w) for w in params["widths"]]
    try:
        check_latent_size(crops, len(widths), int(params["latent_size"]))
    except ValueError as exc:
        raise TrainingError(f"scldm_autoencoder: {exc}") from None
    corpus = SplitDataset(corpus_dir, "train", fields=("face",))
    for item in corpus:
        if int(item["face"].shape[-1]) != crops:
            raise TrainingError(f"the face corpus {corpus_dir} has {int(item['face'].shape[-1])}-px images but the "
                                f"shards have {crops}-px crops: set face_corpus.image_size: {crops}")
        break
    seed_everything(int(params["seed"]))
    config = {"image_size": crops, "widths": widths, "latent_channels": int(params["latent_channels"]),
              "layers_per_block": int(params["layers_per_block"])}
    model = build_autoencoder_from(config).to(device)
    draws = torch.Generator(device=device).manual_seed(int(params["seed"]))
    kl_weight = float(params["kl_weight"])

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        x = _to_model(batch["face"].to(device, non_blocking=True).float())
        posterior = net.encode(x).latent_dist
        recon = net.decode(posterior.sample(generator=draws)).sample
        l1 = (recon.float() - x).abs().mean()
        kl = posterior.kl().float().mean()
        return l1 + kl_weight * kl, {"l1": float(l1.detach()), "kl": float(kl.detach())}

    dataset = SplitDataset([corpus_dir, shards_dir], "train", fields=("face",), shuffle=True,
                           seed=int(params["seed"]))
    run_id = fingerprint({"params": dict(params), "config": config, "stage": "scldm_autoencoder"})
    history = fit(model, dataset, step, params, out, plots_dir, run_id, "scldm_autoencoder", device)
    model.eval()
    _, train_faces = split_faces(shards_dir, "train")
    latents = encode_faces(model, train_faces.to(device))
    std = float(latents.double().std())
    scaling = 1.0 / max(std, 1e-8)
    test_keys, test_faces = split_faces(shards_dir, "test")
    with torch.no_grad():
        recon = ((model.decode(encode_faces(model, test_faces.to(device))).sample + 1) / 2).clamp(0, 1)
    l1 = float((recon.cpu().double() - test_faces.double()).abs().mean())
    shown = min(8, len(test_faces))
    reconstruction_figure(test_faces[:shown], recon[:shown].cpu(), Path(plots_dir) / "reconstructions.png")
    shape = latent_shape(config)
    metrics = {**summary_metrics(history), "steps": int(history[-1].get("steps", 0)), "image_size": crops,
               "latent_shape": shape, "latent_std": std, "scaling_factor": scaling,
               "test": {"n": len(test_keys), "reconstruction_l1": l1},
               "parameters": {"autoencoder": _count(model)}}
    extra = {"family": FAMILY, "stage": AUTOENCODER_STAGE, "image_size": crops, "latent_shape": shape,
             "scaling_factor": scaling, "latent_std": std, "history": history}
    save_checkpoint(out, model.cpu(), AUTOENCODER_ARCH, config, extra)
    resume = resume_path_for(out)
    if resume.exists():
        resume.unlink()
    write_json(metrics_path, metrics)
    return metrics
