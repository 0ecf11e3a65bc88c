"""The keys the label-free stages share (``contrastive``, ``train_selfsup_gan``): the optimiser, the step budget,
the batch, the precision, and ``labels``, which is there to be ignored. Each stage's own schema extends this one in
its ``stages/<name>.py``.
"""
from __future__ import annotations

from typing import Literal

from pipeline.common.schema import Field, PathText, PositiveInt
from pipeline.training.params import AdamKeys


class LabelFreeKeys(AdamKeys):
    """Adam (``AdamKeys``), steps, batch and precision of a label-free stage, and its ignored ``labels``."""

    steps: PositiveInt = Field(description="optimiser steps (the demo's share of this family)")
    batch_size: int = Field(ge=2, description="clips per step, at least 2 (in-batch negatives, BatchNorm); the "
                                              "last partial batch of an epoch is dropped")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="autocast precision (fp16 with a GradScaler)")
    labels: PathText = Field(description='a labels file: ignored with a warning, the family is label-free ("" = '
                                         'none)')
