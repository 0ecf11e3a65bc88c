"""DVC stage ``face_encoder``: VGGFace from verified pretrained weights, or trained on the face-image corpus.

    python -m stages.face_encoder --corpus data/face_corpus --shards data/shards \
        --out data/models/face_encoder.pt --metrics metrics/face_encoder.json
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.common.schema import Field, NonNegativeFloat, PathText, PositiveFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.faces.face_encoder import build_face_encoder, summary_line
from pipeline.training.distributed import relaunch_stage
from pipeline.training.params import TrainingKeys


class Params(TrainingKeys):
    """The ``face_encoder`` section: VGGFace, pretrained or trained on the face corpus."""

    SECTION: ClassVar[str] = "face_encoder"
    source: Literal["train", "pretrained"] = Field(description="train from scratch, or load pinned weights")
    weights: PathText = Field(description="pretrained: path or URL of vgg_face_dag.pth")
    sha256: str = Field(pattern=r"^$|^[0-9a-fA-F]{64}$", description="pretrained: SHA-256 of the weights")
    width: PositiveFloat = Field(description="channel multiplier of VGG-16 (1.0 = paper)")
    fc_dim: PositiveInt = Field(description="fc6/fc7 width (4096 = paper)")
    dropout: float = Field(ge=0, lt=1, description="fc6/fc7 dropout while training")
    batch_norm: bool = Field(description="VGG-16-BN")
    attribute_weight: NonNegativeFloat = Field(description="weight of the corpus attributes' cross-entropy")


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face-image corpus to train on (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess): the crop size to match")
    for name, what in (("out", "output checkpoint path"), ("metrics", "metrics JSON path"),
                       ("plots", "dvclive directory of the training curves")):
        parser.add_argument(f"--{name}", required=True, help=what)


def body(args) -> str | None:
    started = time.perf_counter()
    params = args.section
    metrics = build_face_encoder(args.corpus, args.shards, args.out, args.metrics, args.plots, params)
    return None if metrics is None else summary_line(metrics, elapsed(started))  # None: a rank other than 0


main = stage_main("face_encoder", __doc__, add_arguments, body, schema=Params, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
