"""DVC stage ``features``: the face encoder's fc7 feature of every face crop, per shard, keyed by sample.

    python -m stages.features --shards data/shards --face-encoder data/models/face_encoder.pt --out data/features
"""
from __future__ import annotations

import sys
from typing import ClassVar

from pipeline.common.params import require
from pipeline.common.schema import Device, Field, PositiveInt, Section
from pipeline.common.stage import stage_main
from pipeline.data.engine import load_engine, shutdown
from pipeline.faces.features import extract_features, summary_line


class Params(Section):
    """The ``features`` section: the face feature of every face crop."""

    SECTION: ClassVar[str] = "features"
    fc7_relu: bool = Field(description="the feature is fc7 after (true) or before (false) its ReLU")
    batch_size: PositiveInt = Field(description="faces per forward pass")
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess)")
    parser.add_argument("--face-encoder", required=True, help="face encoder checkpoint (stage face_encoder)")
    parser.add_argument("--out", required=True, help="output features directory")


def body(args) -> str:
    params = args.section
    require(params, "fc7_relu", "batch_size", "device", section="features")
    try:
        summary = extract_features(args.shards, args.face_encoder, args.out, bool(params["fc7_relu"]),
                                   int(params["batch_size"]), str(params["device"]), engine=load_engine(args.params))
    finally:
        shutdown()
    return summary_line(summary, bool(params["fc7_relu"]))


main = stage_main("features", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
