"""The keys SF2F's two stages share (``sf2f_train``, ``sf2f_fuser``): the loss weights, the optimiser, the step
budget and where they run. Each stage's own schema extends this one in its ``stages/<name>.py``.

Each family's demo share is a number of optimiser steps (``steps``), not epochs or seconds.
"""
from __future__ import annotations

from typing import Literal

from pipeline.common.schema import Device, Field, NonNegativeFloat, PositiveFloat, PositiveInt, Section, Seed


class Sf2fKeys(Section):
    """Loss weights, Adam (the same for the generator and the discriminators, as SF2F), steps, seed, device."""

    gan_weight: NonNegativeFloat = Field(description="generator's GAN loss against the patch discriminator (SF2F 1)")
    identity_weight: NonNegativeFloat = Field(description="identity discriminator's GAN and identity terms (SF2F 0.05)")
    l1_weight: NonNegativeFloat = Field(description="L1 pixel loss (SF2F 10 at 64 px, 100 at 128 px)")
    perceptual_weight: NonNegativeFloat = Field(description="perceptual loss on the face encoder's hidden states "
                                                            "(SF2F 100, on FaceNet's)")
    steps: PositiveInt = Field(description="optimiser steps (the demo's share of this family)")
    batch_size: int = Field(ge=2, description="clips per step (BatchNorm needs 2 or more)")
    lr: PositiveFloat = Field(description="Adam's learning rate, generator and discriminators")
    beta1: float = Field(ge=0, lt=1, description="Adam's beta1 (beta2 0.999)")
    eps: PositiveFloat = Field(description="Adam's epsilon")
    lr_decay: float = Field(gt=0, le=1, description="lr x lr_decay every lr_decay_every epochs (1.0 = constant)")
    lr_decay_every: PositiveInt = Field(description="epochs between two lr decays")
    seed: Seed
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="autocast precision (fp16 with a GradScaler)")
