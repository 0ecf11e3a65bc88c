"""Stage ``contrastive``: the voice and face encoders, trained from scratch on speech–face pairs alone.

Every training clip gives one pair: its spectrogram and its face crop. A batch of B pairs is a B-way matching
problem in both directions (``pipeline.families.contrastive.modules.InfoNCE``): the other B − 1 clips of the batch
are the negatives, and clips of one video are never each other's negatives. On AVSpeech a speaker's *other* videos
can still land in one batch as false negatives; nothing label-free can tell them apart (docs/families.md).

The data is read through ``pipeline.data.label_free.LabelFreeSplit``: image, spectrogram, sample key and video id,
no other field of the shards' meta. The last partial batch of each epoch is dropped. Training takes one random
window of ``crop_frames`` frames per clip (0: the whole 6 s); the embeddings of the evaluation and of every
consumer are of the whole clip.

The train loop is the project's (``pipeline.training.loop.fit``): Adam, a step budget, resume states. A resume
state written with another embedding width is refused in one sentence rather than silently thrown away.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.common.errors import TrainingError
from pipeline.families.contrastive.model import (
    ARCH,
    ContrastiveModel,
    build,
    header_extra,
)


def warn_labels_ignored(stage: str, params: dict[str, Any]) -> str | None:
    """The warning (printed on stderr, and returned) when a labels file is configured for a label-free stage."""
    labels = str(params.get("labels") or "")
    if not labels:
        return None
    message = (f"{stage}: warning: labels file {labels} is ignored: the self-supervised family is label-free "
               f"(it reads only face crops, spectrograms, sample keys and video ids)")
    print(message, file=sys.stderr)
    return message


def random_windows(specs: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """One random window of ``frames`` frames per clip, ``(B, 2, F, T)`` → ``(B, 2, F, frames)``; the starts come from
    ``generator`` (a seeded CPU generator) only. ``frames`` 0, or at least T, keeps the whole clip."""
    t = specs.shape[-1]
    if frames <= 0 or frames >= t:
        return specs
    starts = torch.randint(0, t - frames + 1, (specs.shape[0],), generator=generator)
    index = (starts[:, None] + torch.arange(frames)).to(specs.device)
    return specs.gather(3, index[:, None, None, :].expand(-1, specs.shape[1], specs.shape[2], -1))


def same_video(video_ids: list[str], device: torch.device) -> torch.Tensor:
    """``(B, B)`` bool: clips i and j come from one video."""
    codes = {v: i for i, v in enumerate(sorted(set(video_ids)))}
    ids = torch.tensor([codes[v] for v in video_ids], device=device)
    return ids[:, None] == ids[None, :]


def check_resume_width(out: str | Path, embed_dim: int) -> None:
    """Refuse, in one sentence, to resume from a resume state beside ``out`` of another embedding width."""
    from pipeline.training.loop import resume_path_for

    resume = resume_path_for(out)
    if not resume.is_file():
        return
    state = torch.load(resume, map_location="cpu", weights_only=True)
    weight = (state.get("model") or {}).get("speech.head.weight")
    if weight is not None and int(weight.shape[0]) != int(embed_dim):
        raise TrainingError(f"the contrastive resume state {resume} holds {int(weight.shape[0])}-d embeddings but "
                            f"contrastive.embed_dim is {embed_dim}: delete it to start afresh, or set embed_dim "
                            f"back to {int(weight.shape[0])}")


def crop_size(shards_dir: str | Path) -> int:
    """Side of the train split's face crops."""
    from pipeline.data.label_free import LabelFreeSplit

    for item in LabelFreeSplit(shards_dir, "train"):
        return int(item["face"].shape[-1])
    raise TrainingError(f"the train split of {shards_dir} has no samples")


def train_contrastive(shards_dir: str | Path, out: str | Path, plots_dir: str | Path,
                      params: dict[str, Any]) -> tuple[ContrastiveModel, dict[str, Any]]:
    """Train the pair (module docstring), save its checkpoint to ``out``; returns the model (eval mode, on the
    training device) and the training metrics."""
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.label_free import LabelFreeSplit
    from pipeline.training.checkpoints import save_checkpoint
    from pipeline.training.loop import (
        fingerprint,
        fit,
        resume_path_for,
        summary_metrics,
    )

    device = resolve_device(params["device"])
    batch_size = int(params["batch_size"])
    if batch_size < 2:
        raise TrainingError(f"contrastive.batch_size is {batch_size}: in-batch matching needs at least 2 clips")
    check_resume_width(out, int(params["embed_dim"]))
    seed_everything(int(params["seed"]))
    dataset = LabelFreeSplit(shards_dir, "train", shuffle=True, seed=int(params["seed"]), whole_batches=batch_size)
    config = {"speech_channels": [int(c) for c in params["speech_channels"]],
              "face_widths": [int(w) for w in params["face_widths"]], "embed_dim": int(params["embed_dim"]),
              "image_size": crop_size(shards_dir)}
    try:
        model = build(config)
    except ValueError as exc:
        raise TrainingError(f"contrastive: {exc}".rstrip(".")) from None
    model.to(device)
    windows = torch.Generator().manual_seed(int(params["seed"]))
    frames = int(params["crop_frames"])

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        specs = random_windows(batch["spec"].to(device, non_blocking=True).float(), frames, windows)
        speech = net.embed_speech(specs).pooled
        faces = net.embed_faces(batch["face"].to(device, non_blocking=True))
        return net.loss(speech.float(), faces.float(), same_video(batch["video_id"], device))

    def bn_forward(batch: dict) -> None:  # whole clips, as every consumer embeds them
        model.embed_speech(batch["spec"].to(device).float())
        model.embed_faces(batch["face"].to(device))

    run_id = fingerprint({"params": {k: v for k, v in params.items() if k != "labels"}, "config": config,
                          "stage": "contrastive"})
    history = fit(model, dataset, step, params, out, plots_dir, run_id, "contrastive", device, bn_forward=bn_forward)
    metrics = {**summary_metrics(history), "steps": int(history[-1].get("steps", 0)),
               "samples_per_epoch": dataset.count(), "embed_dim": config["embed_dim"],
               "frames_per_token": model.speech.frames_per_token, "image_size": config["image_size"],
               "parameters": {"speech_encoder": _count(model.speech), "face_encoder": _count(model.face)}}
    save_checkpoint(out, model.cpu(), ARCH, config, {**header_extra(model), "history": history})
    resume = resume_path_for(out)
    if resume.exists():
        resume.unlink()
    return model.to(device).eval(), metrics


@torch.no_grad()
def embed_split(model: ContrastiveModel, shards_dir: str | Path, split: str, device: torch.device,
                batch_size: int = 32) -> dict[str, Any]:
    """Whole-clip speech and face embeddings of one split, label-free: ``{"keys", "video_ids", "speech" [N, D],
    "faces" [N, D]}`` (float32 NumPy, shard order)."""
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit

    model.eval()
    keys, videos, speech, faces = [], [], [], []
    for batch in make_loader(LabelFreeSplit(shards_dir, split), batch_size):
        keys += batch["key"]
        videos += batch["video_id"]
        speech.append(model.embed_speech(batch["spec"].to(device).float()).pooled.float().cpu().numpy())
        faces.append(model.embed_faces(batch["face"].to(device)).float().cpu().numpy())
    return {"keys": keys, "video_ids": videos, "speech": np.concatenate(speech), "faces": np.concatenate(faces)}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
