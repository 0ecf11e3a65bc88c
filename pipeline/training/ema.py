"""An exponential moving average of a model's weights, the one SCLDM's denoiser and the self-supervised GAN's
generator are drawn with (the training loop itself knows nothing of it).

:func:`update_ema` moves the average towards the model; :func:`warmed_decay` is the decay after ``n`` updates,
warmed up as diffusers' ``EMAModel`` does (``min(decay, (1 + n) / (10 + n))``), so that the first updates do not
keep the random initial weights for long.
"""
from __future__ import annotations

import torch
from torch import nn


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of the ``updates``-th update (0-based): ``min(decay, (1 + updates) / (10 + updates))``."""
    return min(float(decay), (1.0 + updates) / (10.0 + updates))


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``average`` ← decay · average + (1 − decay) · model, parameter by parameter (buffers copied)."""
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p.detach(), 1.0 - float(decay))
    for a, b in zip(average.buffers(), model.buffers()):
        a.copy_(b)
