"""The keys SF2F's two stages share (``sf2f_train``, ``sf2f_fuser``): the loss weights, the optimiser, the step
budget and where they run. Each stage's own schema extends this one in its ``stages/<name>.py``.

Each family's demo share is a number of optimiser steps (``steps``), not epochs or seconds.
"""
from __future__ import annotations

from typing import Literal

from pipeline.common.schema import Field, NonNegativeFloat, PositiveInt
from pipeline.training.params import AdamKeys


class Sf2fKeys(AdamKeys):
    """Loss weights, steps, batch and precision; Adam (``AdamKeys``) is the same for the generator and the
    discriminators, as in SF2F."""

    gan_weight: NonNegativeFloat = Field(description="generator's GAN loss against the patch discriminator (SF2F 1)")
    identity_weight: NonNegativeFloat = Field(description="identity discriminator's GAN and identity terms (SF2F 0.05)")
    l1_weight: NonNegativeFloat = Field(description="L1 pixel loss (SF2F 10 at 64 px, 100 at 128 px)")
    perceptual_weight: NonNegativeFloat = Field(description="perceptual loss on the face encoder's hidden states "
                                                            "(SF2F 100, on FaceNet's)")
    steps: PositiveInt = Field(description="optimiser steps (the demo's share of this family)")
    batch_size: int = Field(ge=2, description="clips per step (BatchNorm needs 2 or more)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="autocast precision (fp16 with a GradScaler)")
