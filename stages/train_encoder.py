"""DVC stage ``train_encoder@variant``: train the speech encoder SE of one Table 4 variant (FD, VGGFace frozen)."""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.arspm.train_encoder import train_encoder
from pipeline.arspm.variants import VARIANTS
from pipeline.common.schema import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat
from pipeline.common.stage import elapsed, stage_main
from pipeline.training.distributed import relaunch_stage
from pipeline.training.loop import write_cost
from pipeline.training.params import TrainingKeys

VARIANT_NAMES = Literal[tuple(VARIANTS)]  # the names of Table 4's variants (pipeline.arspm.variants)


class Params(TrainingKeys):
    """The ``train_encoder`` section: the speech encoder, one stage per variant."""

    SECTION: ClassVar[str] = "train_encoder"
    variants: list[VARIANT_NAMES] = Field(min_length=1, description="Table 4 variants to train and evaluate")
    width: PositiveFloat = Field(description="SE's channel multiplier (paper 1.0)")
    lambdas: list[NonNegativeFloat] = Field(min_length=3, max_length=3, description="tri-item loss weights")
    time_masks: NonNegativeInt = Field(description="SpecAugment time masks per training spectrogram")
    time_mask_frames: NonNegativeInt = Field(description="longest time mask, STFT frames")
    time_roll: bool = Field(description="random circular time shift of each training spectrogram")


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    for name in ("shards", "features", "priors", "gender", "decoder", "face-encoder", "out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = args.section
    m = train_encoder(args.variant, args.shards, args.features, args.priors, args.gender, args.decoder,
                      args.face_encoder, args.out, args.metrics, args.plots, params)
    write_cost(args.cost, start)
    return (f"train_encoder[{args.variant}]: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
            f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")


main = stage_main("train_encoder", __doc__, add_arguments, body, schema=Params, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
