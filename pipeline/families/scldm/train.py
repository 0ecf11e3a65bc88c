"""Stage ``scldm_train``: SCLDM's latent diffusion model, in the loop every model uses
(``pipeline.training.loop.fit``); the autoencoder's stage is ``pipeline.families.scldm.autoencoder``.

Each training clip gives once, before training, its frozen ``contrastive`` speech embedding c
(whole clip, eval mode) and its face's scaled latent z (posterior mean × scaling factor). The face prior z_prior
is the mean latent of the faces the ``priors`` stage chose for its neutral prior (its ``neutral-faces.json``:
keys and weights, so each speaker counts once), or zeros with ``prior: false``. A step draws timesteps and noise
from the run's seed, jitters c (``condition_noise``: Gaussian noise of that standard deviation per entry, then
renormalised, as the self-supervised GAN does for unseen voices), noises the residual r = z − z_prior with diffusers' ``DDPMScheduler`` (clipping off), drops c
to the null (zero) condition for a ``condition_dropout`` share of the rows (classifier-free guidance) and regresses
the U-Net's output on the noise (ε-prediction) or the velocity (v-prediction), mean squared error. The saved
denoiser is the exponential moving average of the weights (``ema_decay``, warmed up as diffusers' ``EMAModel``:
min(decay, (1 + n) / (10 + n)) at update n).
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset

from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.families.scldm.autoencoder import (
    FAMILY,
    crop_size,
    encode_faces,
    latent_shape,
    load_autoencoder,
    split_faces,
)
from pipeline.families.scldm.model import (
    DIFFUSION_ARCH,
    DIFFUSION_STAGE,
    build_diffusion,
)
from pipeline.families.scldm.modules import (
    drop_conditions,
    prior_latent,
    to_residual,
    training_scheduler,
    training_target,
)
from pipeline.training.ema import MovingAverage

#: the priors stage's list of the faces of its neutral prior (``pipeline.arspm.priors.save_neutral_faces``)
NEUTRAL_FACES = "neutral-faces.json"


#: optimiser steps of one ``fit`` epoch of ``scldm_train`` at least (several passes over the clips): the loop saves a
#: resume state and logs a row per epoch, which at the demo's 4 batches per pass cost more than the steps themselves
STEPS_PER_EPOCH = 50


class KeyDataset(IterableDataset):
    """The training clips' keys, whole batches only, in a seeded shuffled order per pass; one epoch is as many
    passes as make ``STEPS_PER_EPOCH`` steps. What ``fit`` iterates when every clip's inputs are already in memory
    (latents and conditions looked up by key)."""

    def __init__(self, keys: list[str], seed: int, batch_size: int):
        super().__init__()
        if len(keys) < batch_size:
            raise TrainingError(f"the train split has {len(keys)} clip(s), fewer than one batch of {batch_size}")
        self.keys, self.seed, self.batch_size, self.epoch = list(keys), int(seed), int(batch_size), 0
        self.per_pass = len(self.keys) - len(self.keys) % self.batch_size
        self.passes = -(-STEPS_PER_EPOCH // (self.per_pass // self.batch_size))
        self.shard_paths: list = []

    def count(self) -> int:
        return self.per_pass * self.passes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def split_for_rank(self, rank: int, world_size: int, by: str = "samples", num_workers: int = 0) -> int:
        if int(world_size) != 1:
            raise TrainingError("scldm_train runs in one process (nproc 1)")
        return self.count()

    def __iter__(self):
        for p in range(self.passes):
            order = np.random.default_rng([self.seed, self.epoch, p]).permutation(len(self.keys))[:self.per_pass]
            for i in order:
                yield {"key": self.keys[int(i)]}


@torch.no_grad()
def conditions(encoders: torch.nn.Module, shards_dir: str | Path, split: str, device: torch.device,
               batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Each clip's frozen pooled speech embedding (whole clip, eval mode) by key, on ``device``."""
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit

    out: dict[str, torch.Tensor] = {}
    for batch in make_loader(LabelFreeSplit(shards_dir, split), batch_size):
        out.update(zip(batch["key"], encoders.embed_speech(batch["spec"].to(device).float()).pooled.float()))
    return out


def read_neutral_faces(priors_dir: str | Path) -> dict[str, float]:
    """The priors stage's neutral-prior faces: ``key -> weight``."""
    path = Path(priors_dir)
    if path.is_dir():
        path = path / NEUTRAL_FACES
    if not path.is_file():
        raise TrainingError(f"the priors stage's face list {path} not found (rerun the priors stage)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        faces = {str(k): float(w) for k, w in data["faces"]}
    except (ValueError, KeyError, TypeError):
        raise TrainingError(f"{path} is not the priors stage's face list (JSON with \"faces\": [[key, weight], "
                            f"...])") from None
    if not faces:
        raise TrainingError(f"{path} lists no face: the neutral prior is empty")
    return faces


def train_diffusion(shards_dir: str | Path, contrastive_path: str | Path, autoencoder_path: str | Path,
                    priors_path: str | Path, out: str | Path, metrics_path: str | Path, plots_dir: str | Path,
                    params: dict[str, Any]) -> dict[str, Any]:
    """Train the diffusion model (module docstring), write its checkpoint and metrics; returns the metrics."""
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.families.contrastive.model import load_contrastive
    from pipeline.training.checkpoints import save_checkpoint
    from pipeline.training.loop import (
        fingerprint,
        fit,
        resume_path_for,
        summary_metrics,
    )

    device = resolve_device(params["device"])
    batch_size = int(params["batch_size"])
    encoders, contrastive_header = load_contrastive(contrastive_path, device=device)
    encoders.requires_grad_(False)
    autoencoder, ae_header = load_autoencoder(autoencoder_path, device=device)
    autoencoder.requires_grad_(False)
    crops = crop_size(shards_dir)
    if int(ae_header["image_size"]) != crops:
        raise TrainingError(f"the autoencoder {autoencoder_path} is of {ae_header['image_size']}-px faces but the "
                            f"shards have {crops}-px crops (rerun scldm_autoencoder)")
    shape = latent_shape(ae_header["config"])
    if shape != [int(x) for x in ae_header["latent_shape"]]:
        raise TrainingError(f"the autoencoder {autoencoder_path} says its latents are {ae_header['latent_shape']} "
                            f"but its config makes {shape}")
    scaling = float(ae_header["scaling_factor"])
    seed_everything(int(params["seed"]))
    keys, faces = split_faces(shards_dir, "train")
    latents = encode_faces(autoencoder, faces.to(device)) * scaling
    latent_of = dict(zip(keys, latents))
    condition = conditions(encoders, shards_dir, "train", device)
    use_prior = bool(params["prior"])
    chosen = read_neutral_faces(priors_path)
    missing = sorted(set(chosen) - set(latent_of))
    if missing:
        raise TrainingError(f"{len(missing)} of the neutral prior's faces are not training clips of {shards_dir} "
                            f"(first: {missing[0]}): rerun the priors stage")
    prior_keys = sorted(chosen)
    prior = (prior_latent(torch.stack([latent_of[k] for k in prior_keys]),
                          torch.tensor([chosen[k] for k in prior_keys], dtype=torch.float64))
             if use_prior else torch.zeros(shape, device=device))
    scheduler = training_scheduler(int(params["train_timesteps"]), str(params["prediction_type"]))
    config = {"autoencoder": ae_header["config"], "latent_shape": shape, "contrastive": contrastive_header["config"],
              "denoiser": {"widths": [int(w) for w in params["widths"]],
                           "layers_per_block": int(params["layers_per_block"]),
                           "attention": bool(params["attention"])}}
    try:
        nets = build_diffusion(config)
    except ValueError as exc:
        raise TrainingError(f"scldm_train: {exc}") from None
    nets["autoencoder"].load_state_dict(autoencoder.state_dict())
    nets["encoders"].load_state_dict(encoders.state_dict())
    nets["prior"].latent.copy_(prior.float().cpu())
    denoiser = nets["denoiser"].to(device)
    trained = torch.nn.ModuleDict({"denoiser": denoiser, "ema": copy.deepcopy(denoiser).requires_grad_(False)})
    draws = torch.Generator().manual_seed(int(params["seed"]))
    share, decay = float(params["condition_dropout"]), float(params["ema_decay"])
    jitter = float(params["condition_noise"])
    prior_dev = prior.to(device)
    average = MovingAverage(trained["ema"], trained["denoiser"], decay)

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        average.update()  # the previous step's weights into the average (the last ones after fit)
        r0 = to_residual(torch.stack([latent_of[k] for k in batch["key"]]), prior_dev)
        c = torch.stack([condition[k] for k in batch["key"]])
        if jitter > 0:  # unseen test voices: a smooth map from voices to faces, not one face per training clip
            c = F.normalize(c + jitter * torch.randn(c.shape, generator=draws).to(device), dim=1)
        c = drop_conditions(c, share, draws)
        noise = torch.randn(r0.shape, generator=draws).to(device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(r0),), generator=draws).to(device)
        pred = net["denoiser"](scheduler.add_noise(r0, noise, t), t, c)
        loss = F.mse_loss(pred.float(), training_target(scheduler, r0, noise, t).float())
        return loss, {"mse": float(loss.detach())}

    run_id = fingerprint({"params": dict(params), "config": config, "stage": "scldm_train",
                          "contrastive": contrastive_header["config_hash"], "autoencoder": ae_header["config_hash"],
                          "prior_faces": prior_keys})
    dataset = KeyDataset(keys, int(params["seed"]), batch_size)
    history = fit(trained, dataset, step, params, out, plots_dir, run_id, "scldm_train", device)
    average.finish()
    nets["denoiser"] = trained["ema"]
    residual = to_residual(latents, prior_dev)
    metrics = {**summary_metrics(history), "steps": int(history[-1].get("steps", 0)), "latent_shape": shape,
               "prediction_type": scheduler.config.prediction_type,
               "prior": {"used": use_prior, "faces": len(prior_keys),
                         "norm": float(prior.double().norm()),
                         "latent_rms": float(latents.double().pow(2).mean().sqrt()),
                         "residual_rms": float(residual.double().pow(2).mean().sqrt())},
               "parameters": {"denoiser": _count(denoiser), "autoencoder": _count(autoencoder),
                              "speech_encoder": _count(encoders.speech)}}
    extra = {"family": FAMILY, "stage": DIFFUSION_STAGE, "image_size": crops, "latent_shape": shape,
             "scaling_factor": scaling, "cond_dim": encoders.embed_dim, "prior": use_prior,
             "prior_faces": len(prior_keys), "scheduler": {k: v for k, v in dict(scheduler.config).items()
                                                           if not k.startswith("_")},
             "contrastive": {"config_hash": contrastive_header["config_hash"], "embed_dim": encoders.embed_dim},
             "autoencoder": {"config_hash": ae_header["config_hash"]}, "history": history}
    save_checkpoint(out, nets.cpu(), DIFFUSION_ARCH, config, extra)
    resume = resume_path_for(out)
    if resume.exists():
        resume.unlink()
    write_json(metrics_path, metrics)
    return metrics


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
