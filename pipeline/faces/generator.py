"""The interface every model family ends in: a 6-s spectrogram in, a face image out.

AR-SPM (``pipeline.arspm.generator``) and each family under ``pipeline.families`` implement :class:`FaceGenerator`;
``pipeline.evaluation.families`` lists them by name, and the comparison (``compare``), ``pipeline.serve.predict``
and the page load any of them through that list. The input is the shards' spectrogram (``pipeline.data.audio``):
float ``(2, 257, 598)``, the compressed real and imaginary STFT of 6 s at 16 kHz, or a batch of them; the output
is uint8 ``(B, H, W, 3)`` RGB. What a family does inside (a log-mel, a fuser, a prior, a diffusion sampler) is its
own business.

A family's checkpoint header carries ``family`` and ``image_size``; :func:`check_family` refuses a checkpoint of
another family or size in one sentence before anything is built from it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.common.errors import PipelineError

#: the spectrogram every generator takes: (re/im, frequency bins, 10-ms frames) of 6 s at 16 kHz
SPEC_SHAPE = (2, 257, 598)


class GeneratorError(PipelineError, ValueError):
    """A generator's input or checkpoint cannot be used: a wrong spectrogram shape, another family's checkpoint."""


def check_specs(specs: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``specs`` as float32 ``(B, 2, 257, 598)`` (one ``(2, 257, 598)`` spectrogram becomes a batch of one);
    any other shape, or a non-finite value, is refused in one sentence naming both shapes."""
    tensor = torch.as_tensor(np.asarray(specs) if not isinstance(specs, torch.Tensor) else specs)
    if tuple(tensor.shape) == SPEC_SHAPE:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4 or tuple(tensor.shape[1:]) != SPEC_SHAPE:
        raise GeneratorError(f"a spectrogram of shape {tuple(tensor.shape)} cannot be used: the generators take "
                             f"{SPEC_SHAPE} (or a batch (B, {', '.join(map(str, SPEC_SHAPE))})), 6 s at 16 kHz "
                             f"as pipeline.data.audio.spectrogram makes it")
    tensor = tensor.float()
    if not bool(torch.isfinite(tensor).all()):
        raise GeneratorError("the spectrogram holds NaN or infinite values")
    return tensor


def check_family(header: dict[str, Any], path: str | Path, family: str, image_size: int | None = None) -> None:
    """Refuse, in one sentence, a checkpoint whose header names another family (or none), or another image size
    than ``image_size`` when one is required."""
    found = header.get("family")
    if found != family:
        what = f"a {found} checkpoint" if found else f"not a model family's checkpoint (arch {header.get('arch')!r})"
        raise GeneratorError(f"{path} is {what}, but the {family} family was asked for")
    size = header.get("image_size")
    if image_size is not None and size != image_size:
        raise GeneratorError(f"{path} is a {family} checkpoint of {size}-px faces, but {image_size}-px faces are "
                             f"needed here")


def to_uint8(images01: torch.Tensor) -> np.ndarray:
    """float ``(B, 3, H, W)`` in [0, 1] → uint8 ``(B, H, W, 3)`` (values outside [0, 1] are clipped)."""
    array = images01.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu().numpy()
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1))


class FaceGenerator(ABC):
    """A trained family, ready to draw faces: ``generate(specs)`` → uint8 ``(B, H, W, 3)``.

    Subclasses set ``family`` (its name in ``pipeline.evaluation.families``), ``image_size``, ``description`` (one
    line for reports), ``modules`` (the networks it runs, for the parameter count) and ``device``, and implement
    :meth:`faces`. The networks are frozen and in eval mode, so the same input and seed give the same face. A family
    that samples sets ``noise_dim`` (the comparison then draws its disentanglement figure: one voice with several
    seeds, one seed with several voices); one with its own voice–face matching space implements
    :meth:`matching_embeddings`.
    """

    family: str
    image_size: int
    description: str
    device: torch.device
    modules: tuple[torch.nn.Module, ...] = ()
    #: width of the noise ``seed`` drives (0: every seed draws the same face)
    noise_dim: int = 0

    @abstractmethod
    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """float ``(B, 3, H, W)`` faces in [0, 1] of a float32 ``(B, 2, 257, 598)`` batch on ``self.device``;
        ``seed`` drives any sampling noise (families without noise ignore it)."""

    @torch.no_grad()
    def generate(self, specs: np.ndarray | torch.Tensor, batch_size: int = 32, seed: int = 0) -> np.ndarray:
        """uint8 ``(B, H, W, 3)`` faces of one spectrogram or a batch, in batches of ``batch_size``."""
        batch = check_specs(specs)
        out = []
        for start in range(0, batch.shape[0], batch_size):
            images = self.faces(batch[start:start + batch_size].to(self.device), seed=seed + start)
            if not bool(torch.isfinite(images).all()):
                raise GeneratorError(f"the {self.family} generator gives a non-finite image (NaN or infinite "
                                     f"weights?)")
            out.append(to_uint8(images))
        return np.concatenate(out, axis=0)

    def matching_embeddings(self, specs: np.ndarray | torch.Tensor,
                            faces: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The family's own unit embeddings of voices and of true faces (uint8 ``(N, H, W, 3)``) in one space, for
        K-way matching on real faces: ``(speech [N, D], faces [N, D])``; None for a family without such a space."""
        return None

    def parameter_count(self) -> int:
        """Parameters of the networks that drawing a face runs."""
        seen: set[int] = set()
        total = 0
        for module in self.modules:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total
