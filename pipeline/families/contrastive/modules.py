"""The voice–face contrastive pair as pure ``nn.Module``s and its loss (no I/O).

Nothing here draws random numbers of its own: weights come from PyTorch's initialisers, so ``torch.manual_seed``
before construction makes them reproducible.

- ``SpeechEncoder``: the shards' compressed STFT ``(B, 2, 257, T)`` → ``SpeechEmbedding(pooled, tokens)``: a unit
  ``(B, embed_dim)`` vector for matching and conditioning, and ``(B, T', embed_dim)`` time tokens (one per 8
  frames, 80 ms, with three stride-2 blocks) for a cross-attention consumer. Any T ≥ 1 works.
- ``FaceEncoder``: faces ``(B, 3, S, S)`` in [0, 1] → unit ``(B, embed_dim)``.
- ``InfoNCE``: the symmetric in-batch loss with a learnable temperature.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

#: frequency bins of the shards' STFT (512-point FFT)
SPEC_BINS = 257
#: CLIP's starting temperature (0.07) and its cap on the learnt logit scale (100)
INITIAL_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = 100.0


class SpeechEmbedding(NamedTuple):
    """What the speech encoder gives: ``pooled`` unit ``(B, D)`` and ``tokens`` ``(B, T', D)`` (not normalised)."""

    pooled: torch.Tensor
    tokens: torch.Tensor


def spectral_magnitude(specs: torch.Tensor) -> torch.Tensor:
    """``(B, 2, 257, T)`` compressed Re/Im → ``(B, 257, T)`` ``sqrt(re² + im²)``: the compressed magnitude, phase
    dropped (a speaker's voice is in the magnitude; the phase of a 6-s clip is mostly noise to a small CNN)."""
    return torch.sqrt(specs[:, 0] ** 2 + specs[:, 1] ** 2 + 1e-8)


class SpeechEncoder(nn.Module):
    """1-D CNN over time, frequency bins as channels.

    BatchNorm over the 257 bins (the train split's per-bin statistics, learnt), ``Conv1d(257 → channels[0], k3)``,
    then a ``Conv1d(k3, stride 2)`` + BN + ReLU block per width of ``channels`` (so ``len(channels)`` halvings of
    time); the tokens are a 1×1 convolution of the last map to ``embed_dim``; the pooled embedding is a linear map
    of the time mean of the last map, L2-normalised.
    """

    def __init__(self, channels: Sequence[int] = (64, 128, 128), embed_dim: int = 128, bins: int = SPEC_BINS):
        super().__init__()
        if not channels:
            raise ValueError("SpeechEncoder needs at least one block width in channels.")
        self.bins = int(bins)
        self.embed_dim = int(embed_dim)
        self.input_norm = nn.BatchNorm1d(self.bins)
        self.stem = nn.Sequential(nn.Conv1d(self.bins, channels[0], 3, padding=1, bias=False),
                                  nn.BatchNorm1d(channels[0]), nn.ReLU(inplace=True))
        widths = [channels[0], *channels]
        self.blocks = nn.Sequential(*(nn.Sequential(nn.Conv1d(a, b, 3, stride=2, padding=1, bias=False),
                                                    nn.BatchNorm1d(b), nn.ReLU(inplace=True))
                                      for a, b in pairwise(widths)))
        self.to_tokens = nn.Conv1d(widths[-1], self.embed_dim, 1)
        self.head = nn.Linear(widths[-1], self.embed_dim)

    @property
    def frames_per_token(self) -> int:
        """Spectrogram frames (10 ms each) per time token."""
        return 2 ** (len(self.blocks))

    def forward(self, specs: torch.Tensor) -> SpeechEmbedding:
        if specs.dim() != 4 or specs.shape[1] != 2 or specs.shape[2] != self.bins:
            raise ValueError(f"SpeechEncoder expects (B, 2, {self.bins}, T), got {tuple(specs.shape)}.")
        x = self.blocks(self.stem(self.input_norm(spectral_magnitude(specs.float()))))
        tokens = self.to_tokens(x).transpose(1, 2)
        return SpeechEmbedding(F.normalize(self.head(x.mean(dim=-1)), dim=-1), tokens)


class FaceEncoder(nn.Module):
    """A strided 2-D CNN: ``Conv2d(k4, stride 2)`` + BN + ReLU per width of ``widths`` (each halves the side),
    global average pooling, a linear map to ``embed_dim``, L2 normalisation. Input faces in [0, 1]."""

    def __init__(self, image_size: int = 64, widths: Sequence[int] = (32, 64, 128, 128), embed_dim: int = 128):
        super().__init__()
        if not widths:
            raise ValueError("FaceEncoder needs at least one convolution width in widths.")
        if image_size < 2 ** len(widths):
            raise ValueError(f"FaceEncoder with {len(widths)} stride-2 convolutions needs faces of at least "
                             f"{2 ** len(widths)} px, not {image_size}.")
        self.image_size = int(image_size)
        self.embed_dim = int(embed_dim)
        layers: list[nn.Module] = []
        for a, b in pairwise([3, *widths]):
            layers += [nn.Conv2d(a, b, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], self.embed_dim)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        if faces.dim() != 4 or faces.shape[1] != 3:
            raise ValueError(f"FaceEncoder expects (B, 3, H, W), got {tuple(faces.shape)}.")
        x = self.features(faces * 2 - 1)
        return F.normalize(self.head(x.mean(dim=(2, 3))), dim=-1)


class InfoNCE(nn.Module):
    """Symmetric InfoNCE over a batch of matched pairs (CLIP's loss): row i of ``speech`` and of ``faces`` belong to
    the same clip; every other clip of the batch is a negative in both directions.

    ``logits = exp(log_scale) · speech @ facesᵀ`` (both unit vectors), the scale learnt from ``1 / 0.07`` and capped
    at 100 as in CLIP; the loss is the mean of the voice→face and face→voice cross-entropies. ``same_source``
    (``(B, B)`` bool, optional) marks pairs of clips of one video: they are not negatives of each other (on AVSpeech,
    two clips of one video show the same speaker), so their logits are left out of both softmaxes.
    """

    def __init__(self, temperature: float = INITIAL_TEMPERATURE, max_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        if not 0 < temperature:
            raise ValueError(f"the InfoNCE temperature must be positive, got {temperature}.")
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_log_scale = math.log(max_scale)

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def logits(self, speech: torch.Tensor, faces: torch.Tensor,
               same_source: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, B)`` voice→face logits (row: a voice; column: a face), same-video pairs at −inf off the diagonal."""
        logits = self.scale * speech @ faces.t()
        if same_source is not None:
            off_diagonal = same_source & ~torch.eye(len(logits), dtype=torch.bool, device=logits.device)
            logits = logits.masked_fill(off_diagonal, float("-inf"))
        return logits

    def forward(self, speech: torch.Tensor, faces: torch.Tensor,
                same_source: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if speech.shape != faces.shape or speech.dim() != 2 or speech.shape[0] < 2:
            raise ValueError(f"InfoNCE needs two (B, D) batches of the same shape with B ≥ 2, got "
                             f"{tuple(speech.shape)} and {tuple(faces.shape)}.")
        logits = self.logits(speech, faces, same_source)
        target = torch.arange(len(logits), device=logits.device)
        voice_to_face = F.cross_entropy(logits, target)
        face_to_voice = F.cross_entropy(logits.t(), target)
        with torch.no_grad():
            accuracy = (logits.argmax(dim=1) == target).float().mean()
        return (voice_to_face + face_to_voice) / 2, {
            "voice_to_face": float(voice_to_face.detach()), "face_to_voice": float(face_to_voice.detach()),
            "batch_accuracy": float(accuracy), "temperature": float(1.0 / self.scale.detach())}
