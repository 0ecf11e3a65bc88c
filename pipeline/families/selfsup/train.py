"""Stage ``train_selfsup_gan``: G(z, c) against a projection discriminator, c the frozen contrastive speech
embedding, in the loop every model uses (``pipeline.training.loop.fit`` with a ``Critic``).

Per step, for a batch of training clips (read label-free, ``pipeline.data.label_free``; the last partial batch
dropped): c is the ``contrastive`` speech embedding of each whole clip (frozen; computed once per clip before
training, the encoders being in eval mode), z is standard normal noise from the run's seed, and the generator draws
G(z, c). Its loss is the hinge GAN loss against the projection discriminator D(x, c), plus ``identity_weight`` ·
(1 − cos(F(G(z, c)), c)), F the frozen ``contrastive`` face encoder (the drawn face must lie where the voice's
face lies in the space both encoders were trained to share), plus ``reconstruction_weight`` · |G(z, c) − x|₁, x
the clip's own face crop (its pairing is the only supervision; no label). With ``condition_noise`` > 0 each
step's c is jittered (Gaussian noise of that standard deviation per entry, renormalised), so that the generator
learns a smooth map from voices to faces rather than one face per training clip: the test voices are unseen.
Then the discriminator takes its hinge step on the clip's real face and the detached fake, both with the clip's c
(Miyato & Koyama's projection: a real face with its own voice is "real").

With ``ema_decay`` > 0 the saved generator is the exponential moving average of G's weights
(``pipeline.training.ema``, warmed up), with BatchNorm statistics recomputed for the averaged weights: on the
demo, the last step's G alone carried that step's noise into the drawn faces.

With ``augment`` on, real and fake faces alike are shifted by up to 1/8 of their side and their brightness,
saturation and contrast jittered before the discriminator sees them (DiffAugment, Zhao et al. 2020): with a few
hundred training faces, the discriminator otherwise learns them by heart within a few hundred steps.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.families.selfsup.model import ARCH, FAMILY, STAGE, build, noise
from pipeline.families.selfsup.modules import (
    hinge_discriminator_loss,
    hinge_generator_loss,
    identity_loss,
    reachable_size,
)

#: the discriminator's own optimiser keys (its learning rate is ``discriminator_lr``)
OPTIMISER_KEYS = ("beta1", "eps", "lr_decay", "lr_decay_every")


def diff_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment's colour and translation (Zhao et al. 2020), differentiable, one draw per image from
    ``generator`` (a seeded CPU generator): brightness ±0.5, saturation ×[0, 2], contrast ×[0.5, 1.5], then a
    shift of up to 1/8 of the side with zero padding. Images in [0, 1]; the output may leave [0, 1]."""
    b, _, h, w = images.shape

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(images.device, images.dtype)

    x = images + (uniform(b, 1, 1, 1) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (uniform(b, 1, 1, 1) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (uniform(b, 1, 1, 1) + 0.5) + mean
    shift = max(1, h // 8)
    dy = torch.randint(-shift, shift + 1, (b,), generator=generator)
    dx = torch.randint(-shift, shift + 1, (b,), generator=generator)
    padded = F.pad(x, (shift, shift, shift, shift))
    rows = (torch.arange(h)[None, :] + shift - dy[:, None]).to(images.device)
    cols = (torch.arange(w)[None, :] + shift - dx[:, None]).to(images.device)
    index = torch.arange(b, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def _resize(faces: torch.Tensor, size: int) -> torch.Tensor:
    if faces.shape[-1] == size:
        return faces
    return F.interpolate(faces, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


@torch.no_grad()
def conditions(encoders: torch.nn.Module, shards_dir: str | Path, split: str, device: torch.device,
               batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Each clip's frozen speech embedding c (whole clip, eval mode) by sample key, on ``device``."""
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit

    out: dict[str, torch.Tensor] = {}
    for batch in make_loader(LabelFreeSplit(shards_dir, split), batch_size):
        pooled = encoders.embed_speech(batch["spec"].to(device).float()).pooled.float()
        out.update(zip(batch["key"], pooled))
    return out


def train_gan(shards_dir: str | Path, contrastive_path: str | Path, out: str | Path, metrics_path: str | Path,
              plots_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train the GAN (module docstring), write its checkpoint and metrics; returns the metrics."""
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit
    from pipeline.families.contrastive.model import load_contrastive
    from pipeline.families.contrastive.train import crop_size
    from pipeline.training.checkpoints import save_checkpoint
    from pipeline.training.ema import MovingAverage
    from pipeline.training.loop import (
        Critic,
        fingerprint,
        fit,
        recalibrate_batchnorm,
        resume_path_for,
        summary_metrics,
    )

    device = resolve_device(params["device"])
    batch_size = int(params["batch_size"])
    if batch_size < 2:
        raise TrainingError(f"train_selfsup_gan.batch_size is {batch_size}: BatchNorm needs at least 2 faces")
    encoders, contrastive_header = load_contrastive(contrastive_path, device=device)
    encoders.requires_grad_(False)
    seed_everything(int(params["seed"]))
    crops = crop_size(shards_dir)
    size = reachable_size(crops)
    config = {"noise_dim": int(params["noise_dim"]), "generator_width": int(params["generator_width"]),
              "discriminator_widths": [int(w) for w in params["discriminator_widths"]], "image_size": size,
              "contrastive": contrastive_header["config"]}
    try:
        nets = build(config)
    except ValueError as exc:
        raise TrainingError(f"train_selfsup_gan: {exc}".rstrip(".")) from None
    nets["encoders"].load_state_dict(encoders.state_dict())
    generator, discriminator, frozen = nets["generator"], nets["discriminator"], nets["encoders"]
    frozen.to(device).eval().requires_grad_(False)
    generator.to(device)
    discriminator.to(device)
    condition = conditions(frozen, shards_dir, "train", device)
    draws = torch.Generator().manual_seed(int(params["seed"]))
    augments = torch.Generator().manual_seed(int(params["seed"]) + 1)
    weight, rec_weight = float(params["identity_weight"]), float(params["reconstruction_weight"])
    augment, jitter = bool(params["augment"]), float(params["condition_noise"])

    def seen(images: torch.Tensor) -> torch.Tensor:
        return diff_augment(images, augments) if augment else images

    def batch_condition(batch: dict) -> torch.Tensor:
        return torch.stack([condition[key] for key in batch["key"]])

    def jittered(c: torch.Tensor) -> torch.Tensor:
        if jitter <= 0:
            return c
        return F.normalize(c + jitter * torch.randn(c.shape, generator=draws).to(device), dim=1)

    ema_decay = float(params["ema_decay"])
    # with ema_decay > 0 the loop trains {"generator", "ema"} (the average takes no gradient), so that a resumed run
    # resumes its average too
    trained = (torch.nn.ModuleDict({"generator": generator, "ema": copy.deepcopy(generator).requires_grad_(False)})
               if ema_decay > 0 else generator)
    average = MovingAverage(trained["ema"], generator, ema_decay) if ema_decay > 0 else None

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        if average is not None:
            average.update()  # the previous step's weights into the average (the last ones after fit)
            net = net["generator"]
        c = jittered(batch_condition(batch))
        real = _resize(batch["face"].to(device, non_blocking=True), size)
        z = torch.randn(len(c), generator.noise_dim, generator=draws).to(device)
        fake = net(z, c)
        gan = hinge_generator_loss(discriminator(seen(fake), c).float())
        ident = identity_loss(frozen.embed_faces(fake.float()), c) if weight > 0 else fake.new_zeros(())
        l1 = (fake.float() - real).abs().mean()
        batch.update(selfsup_fake=fake.detach(), selfsup_real=real, selfsup_c=c)
        return gan + weight * ident + rec_weight * l1, {"gan": float(gan.detach()), "identity": float(ident.detach()),
                                                       "l1": float(l1.detach())}

    def critic_step(batch: dict, d: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        real, c = batch["selfsup_real"], batch["selfsup_c"]
        real_logits, fake_logits = d(seen(real), c).float(), d(seen(batch["selfsup_fake"]), c).float()
        loss = hinge_discriminator_loss(real_logits, fake_logits)
        return loss, {"real": float(real_logits.mean().detach()), "fake": float(fake_logits.mean().detach())}

    def bn_forward(batch: dict) -> torch.Tensor:
        c = batch_condition(batch)
        return generator(torch.randn(len(c), generator.noise_dim, generator=draws).to(device), c)

    dataset = LabelFreeSplit(shards_dir, "train", shuffle=True, seed=int(params["seed"]), whole_batches=batch_size)
    critic = Critic(discriminator, critic_step, {"lr": float(params["discriminator_lr"]),
                                                 **{k: params[k] for k in OPTIMISER_KEYS}})
    run_id = fingerprint({"params": {k: v for k, v in params.items() if k != "labels"}, "config": config,
                          "contrastive": contrastive_header["config_hash"], "stage": "train_selfsup_gan"})
    history = fit(trained, dataset, step, params, out, plots_dir, run_id, "train_selfsup_gan", device,
                  bn_forward=bn_forward, critic=critic)
    if average is not None:  # draw with the average: its own BatchNorm statistics, recomputed as fit does for G's
        average.finish()
        generator.load_state_dict(trained["ema"].state_dict())
        recalibrate_batchnorm(generator, make_loader(dataset, batch_size), bn_forward)
    generator.eval()
    metrics = {**summary_metrics(history), "steps": int(history[-1].get("steps", 0)), "image_size": size,
               "crop_size": crops, "test": test_matching(generator, frozen, shards_dir, device, int(params["seed"])),
               "parameters": {"generator": _count(generator), "discriminator": _count(discriminator),
                              "speech_encoder": _count(frozen.speech)}}
    extra = {"family": FAMILY, "stage": STAGE, "image_size": size, "noise_dim": generator.noise_dim,
             "cond_dim": frozen.embed_dim, "contrastive": {"config_hash": contrastive_header["config_hash"],
                                                          "embed_dim": frozen.embed_dim}, "history": history}
    save_checkpoint(out, nets.cpu(), ARCH, config, extra)
    resume = resume_path_for(out)
    if resume.exists():
        resume.unlink()
    write_json(metrics_path, metrics)  # seconds go to the stage's cost file: same seed, same metrics bytes
    return metrics


@torch.no_grad()
def test_matching(generator: torch.nn.Module, encoders: torch.nn.Module, shards_dir: str | Path,
                  device: torch.device, seed: int) -> dict[str, Any]:
    """Label-free, on the test clips: the mean cosine of F(G(z, c_i)) to its own c_i and to every other clip's c_j
    (the identity term's reach on unseen voices; gap 0 = the drawn faces ignore their voice)."""
    test = conditions(encoders, shards_dir, "test", device)
    if len(test) < 2:
        return {"n": len(test), "own": None, "other": None, "gap": None}
    c = torch.stack(list(test.values()))
    faces = generator(noise(len(c), generator.noise_dim, seed, device), c)
    cos = (encoders.embed_faces(faces) @ c.t()).double().cpu().numpy()
    own = np.diag(cos)
    other = (cos.sum(axis=1) - own) / (len(c) - 1)
    return {"n": len(c), "own": float(own.mean()), "other": float(other.mean()), "gap": float((own - other).mean())}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
