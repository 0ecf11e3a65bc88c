"""The keys SCLDM's two training stages share (``scldm_autoencoder``, ``scldm_train``): the optimiser, the step
budget, the batch and the precision. Each stage's own schema extends this one in its ``stages/<name>.py``."""
from __future__ import annotations

from typing import Literal

from pipeline.common.schema import Field, PositiveInt
from pipeline.training.params import AdamKeys


class ScldmKeys(AdamKeys):
    """Adam (``AdamKeys``), steps, batch and precision of an SCLDM training stage."""

    steps: PositiveInt = Field(description="optimiser steps (the demo's share of this family)")
    batch_size: int = Field(ge=2, description="faces or clips per step, at least 2; the last partial batch of an "
                                              "epoch is dropped")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="autocast precision (fp16 with a GradScaler)")
