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


class MovingAverage:
    """The average of ``model`` kept in ``average`` during a ``fit``: :meth:`update` at the start of every step
    (it adds the previous step's weights, so the first call adds nothing), :meth:`finish` after the last step."""

    def __init__(self, average: nn.Module, model: nn.Module, decay: float):
        self.average, self.model, self.decay, self.updates = average, model, float(decay), 0

    def update(self) -> None:
        if self.updates:
            update_ema(self.average, self.model, warmed_decay(self.decay, self.updates))
        self.updates += 1

    def finish(self) -> None:
        update_ema(self.average, self.model, warmed_decay(self.decay, self.updates))
