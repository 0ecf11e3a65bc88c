"""The moving average of weights that SCLDM's denoiser and the self-supervised GAN's generator are drawn with."""
from __future__ import annotations

import torch

from pipeline.training.ema import MovingAverage, update_ema, warmed_decay


def test_the_moving_average() -> None:
    torch.manual_seed(0)
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    expected = 0.9 * a.weight.detach() + 0.1 * b.weight.detach()
    update_ema(a, b, 0.9)
    assert torch.allclose(a.weight, expected)
    update_ema(a, b, 0.0)
    assert torch.equal(a.weight, b.weight)


def test_the_decay_warms_up_as_diffusers_ema_model() -> None:
    assert warmed_decay(0.999, 0) == 0.1 and warmed_decay(0.999, 10) == 11 / 20
    assert warmed_decay(0.9, 1000) == 0.9


def test_the_moving_average_adds_the_previous_steps_weights() -> None:
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    start = a.weight.detach().clone()
    average = MovingAverage(a, b, 0.999)
    average.update()  # the first step: nothing to add yet
    assert torch.equal(a.weight, start)
    average.update()  # the first step's weights, decay 2/11
    assert torch.allclose(a.weight, 2 / 11 * start + 9 / 11 * b.weight.detach())
    average.finish()  # the last step's, decay 3/12
    assert average.updates == 2
