"""DVC stage ``face_corpus``: still face crops of many synthetic identities with their attributes.

    python -m stages.face_corpus --out data/face_corpus
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, NonNegativeFloat, PositiveInt, Section, Seed
from pipeline.common.stage import elapsed, stage_main
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.data.sample.face import drawing_workers


class Params(Section):
    """The ``face_corpus`` section: still faces of many synthetic identities."""

    SECTION: ClassVar[str] = "face_corpus"
    seed: Seed
    n_identities: int = Field(ge=2, description="distinct identities")
    images_per_identity: PositiveInt = Field(description="images of each identity")
    frame_size: int = Field(ge=64, description="frame the face is drawn in, pixels")
    image_size: int = Field(ge=8, description="crop side, pixels (= preprocess.image_size)")
    margin: NonNegativeFloat = Field(description="context around the face box, fraction of its side")
    center_box: float = Field(gt=0, le=1, description="face box side as a fraction of the frame height")
    shard_size: PositiveInt = Field(description="images per tar shard")


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (train-NNNNNN.tar shards, identities.json)")


def body(args) -> str:
    started = time.perf_counter()
    cfg = CorpusConfig.from_params(args.section)
    counts = generate_face_corpus(args.out, cfg, workers=drawing_workers())
    return (f"face_corpus: {counts['identities']} identities x {cfg.images_per_identity} images = "
            f"{counts['images']} face crops of {cfg.image_size}px in {counts['shards']} shard(s), "
            f"{elapsed(started)} -> {args.out}")


main = stage_main("face_corpus", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
