"""DVC stage ``preprocess``: raw clip shards → WebDataset sample shards + metrics.

    python -m stages.preprocess --raw data/raw --out data/shards --metrics metrics/preprocess.json
"""
from __future__ import annotations

import sys
from typing import ClassVar, Literal

from pipeline.common.io import write_json
from pipeline.common.schema import (
    Device,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PathText,
    PositiveFloat,
    PositiveInt,
    Section,
)
from pipeline.common.stage import stage_main
from pipeline.data.engine import load_engine, shutdown
from pipeline.data.media import require_ffmpeg
from pipeline.data.preprocess import PreprocessConfig, run_preprocess, summary_line


class Params(Section):
    """The ``preprocess`` section: face crops, 6-s audio and spectrograms into WebDataset shards."""

    SECTION: ClassVar[str] = "preprocess"
    detector: Literal["center", "dlib", "dlib_cnn", "face_alignment"] = Field(description="face detector")
    device: Device = Field(description="device of the face_alignment detector")
    image_size: int = Field(ge=8, description="face crop side, pixels (the paper: 224)")
    margin: NonNegativeFloat = Field(description="context around the face box, fraction of its side")
    frame_time: NonNegativeFloat = Field(description="seconds after the segment start of the face's frame")
    max_center_distance: PositiveFloat = Field(description="farthest face centre from x,y (fraction of frame)")
    jpeg_quality: int = Field(ge=1, le=100, description="JPEG quality of the face crops")
    shard_max_count: PositiveInt = Field(description="samples per shard, at most")
    shard_max_bytes: PositiveInt = Field(description="bytes per shard, at most")
    center_box: float = Field(gt=0, le=1, description="detector center: face box side / frame height")
    dlib_upsample: NonNegativeInt = Field(description="dlib detectors: times the frame is doubled first")
    face_alignment_dir: PathText = Field(description='face_alignment weights directory ("" = torch-hub cache)')
    align: Literal["none", "eyes"] = Field(description="eyes: rotate and scale the crop so the eyes are level")


def add_arguments(parser) -> None:
    parser.add_argument("--raw", required=True, help="directory of raw clip shards (download stage output)")
    parser.add_argument("--out", required=True, help="directory for the WebDataset shards")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")


def body(args) -> str:
    require_ffmpeg()
    try:
        cfg = PreprocessConfig.from_params(args.section)
        metrics = run_preprocess(args.raw, args.out, cfg, engine=load_engine(args.params))
    finally:
        shutdown()
    write_json(args.metrics, metrics)
    return summary_line(metrics)


main = stage_main("preprocess", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
