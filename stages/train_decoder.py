"""DVC stage ``train_decoder``: train the face decoder FD on the face corpus (crops and their face features)."""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.arspm.train_decoder import train_decoder
from pipeline.common.schema import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.training.distributed import relaunch_stage
from pipeline.training.loop import write_cost
from pipeline.training.params import TrainingKeys


class Params(TrainingKeys):
    """The ``train_decoder`` section: the face decoder FD."""

    SECTION: ClassVar[str] = "train_decoder"
    faces: Literal["corpus", "shards", "both"] = Field(description="the faces FD trains on")
    width: PositiveFloat = Field(description="FD's channel multiplier (paper 1.0)")
    first_map: NonNegativeInt = Field(description="side of fc2's first map; 0 = image_size / 32")
    fc1_dim: PositiveInt = Field(description="fc1 width (paper 1000)")
    alpha: float = Field(ge=0, le=1, description="weight of 1 - MS-SSIM against the Gaussian-weighted L1")
    msssim_win_size: int = Field(ge=1, description="MS-SSIM window, pixels (odd; paper 11)")
    cos_weight: NonNegativeFloat = Field(description="weight of the face encoder's cosine term")


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face-image corpus (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards (stage preprocess), for train_decoder.faces: shards or both")
    for name in ("features", "face-encoder", "out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = args.section
    m = train_decoder(args.corpus, args.shards, args.features, args.face_encoder, args.out, args.metrics,
                      args.plots, params)
    write_cost(args.cost, start)
    return (f"train_decoder: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
            f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")


main = stage_main("train_decoder", __doc__, add_arguments, body, schema=Params, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
