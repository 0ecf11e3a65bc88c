"""The contrastive pair put together, and its checkpoint.

``ContrastiveModel`` holds the speech encoder, the face encoder and the InfoNCE temperature. Its checkpoint (stage
``contrastive``) has a header that says what it is (``family: contrastive``, ``stage: contrastive``), the embedding
width (``embed_dim``, the width of the pooled speech embedding, of the face embedding and of each time token),
the spectrogram frames per token and the face size the face encoder takes. The families built on it (the
self-supervised GAN, SCLDM) load it with :func:`load_contrastive`, which refuses another width than the one they
need in one sentence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.common.errors import PipelineError
from pipeline.families.contrastive.modules import (
    FaceEncoder,
    InfoNCE,
    SpeechEmbedding,
    SpeechEncoder,
)

FAMILY = "contrastive"
STAGE = "contrastive"
ARCH = "voice_face_contrastive"


class ContrastiveError(PipelineError, ValueError):
    """A contrastive checkpoint that cannot be used here (not one, or of another width or face size)."""


class ContrastiveModel(nn.Module):
    """Speech encoder + face encoder + the loss's learnable temperature."""

    def __init__(self, speech_channels: list[int], face_widths: list[int], embed_dim: int, image_size: int):
        super().__init__()
        self.speech = SpeechEncoder(tuple(speech_channels), embed_dim)
        self.face = FaceEncoder(image_size, tuple(face_widths), embed_dim)
        self.loss = InfoNCE()
        self.embed_dim = int(embed_dim)
        self.image_size = int(image_size)

    def embed_speech(self, specs: torch.Tensor) -> SpeechEmbedding:
        """Pooled unit embedding ``(B, D)`` and time tokens ``(B, T', D)`` of spectrograms ``(B, 2, 257, T)``."""
        return self.speech(specs)

    def embed_faces(self, faces: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``(B, D)`` of faces ``(B, 3, S, S)`` in [0, 1] (resized to the encoder's size)."""
        if faces.shape[-1] != self.image_size or faces.shape[-2] != self.image_size:
            faces = nn.functional.interpolate(faces, size=(self.image_size, self.image_size), mode="bilinear",
                                              antialias=True, align_corners=False)
        return self.face(faces)

    @torch.no_grad()
    def matching_embeddings(self, specs: torch.Tensor, faces: np.ndarray, device: torch.device | str,
                            batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Unit embeddings of voices (spectrograms ``(N, 2, 257, T)``) and of true faces (uint8 ``(N, H, W, 3)``):
        ``(speech [N, D], faces [N, D])``, float32, in batches on ``device`` (the families' matching in compare)."""
        images = torch.from_numpy(np.ascontiguousarray(np.asarray(faces, dtype=np.uint8).transpose(0, 3, 1, 2)))
        speech, face = [], []
        for start in range(0, len(specs), batch_size):
            speech.append(self.embed_speech(specs[start:start + batch_size].to(device)).pooled)
            face.append(self.embed_faces(images[start:start + batch_size].to(device).float() / 255))
        return torch.cat(speech).float().cpu().numpy(), torch.cat(face).float().cpu().numpy()


def build(config: dict[str, Any]) -> ContrastiveModel:
    """The model a config describes (seed torch first for reproducible weights)."""
    return ContrastiveModel(list(config["speech_channels"]), list(config["face_widths"]), int(config["embed_dim"]),
                            int(config["image_size"]))


def header_extra(model: ContrastiveModel) -> dict[str, Any]:
    """What the checkpoint's header says besides the config."""
    return {"family": FAMILY, "stage": STAGE, "embed_dim": model.embed_dim, "token_dim": model.embed_dim,
            "frames_per_token": model.speech.frames_per_token, "image_size": model.image_size}


def check_header(header: dict[str, Any], path: str | Path, embed_dim: int | None = None) -> None:
    """Refuse, in one sentence, a checkpoint that is not ``contrastive``'s or (``embed_dim``) has another width."""
    if header.get("family") != FAMILY or header.get("stage") != STAGE:
        what = (f"a {header['family']} checkpoint" if header.get("family")
                else f"not a model family's checkpoint (arch {header.get('arch')!r})")
        raise ContrastiveError(f"{path} is {what}, not the contrastive stage's voice and face encoders")
    if embed_dim is not None and int(header.get("embed_dim", -1)) != int(embed_dim):
        raise ContrastiveError(f"{path} holds contrastive encoders of {header.get('embed_dim')}-d embeddings, but "
                               f"{embed_dim}-d embeddings are needed here (rerun contrastive with embed_dim "
                               f"{embed_dim}, or use the width it has)")


def load_contrastive(path: str | Path, embed_dim: int | None = None,
                     device: torch.device | str = "cpu") -> tuple[ContrastiveModel, dict[str, Any]]:
    """A ``contrastive`` checkpoint's model (eval mode) and header; another stage's checkpoint, or (``embed_dim``)
    another embedding width, is refused in one sentence."""
    from pipeline.training.checkpoints import load_built

    def build_checked(header: dict[str, Any]) -> nn.Module:
        check_header(header, path, embed_dim)
        return build(header["config"])

    model, header = load_built(path, build_checked)
    model.to(device)
    return model, header
