"""DVC stage ``evaluate_decoder``: the face decoder alone: Face-to-Face pixels, diversity, retrieval, attributes,
paper Figures 4 and 2.

    python -m stages.evaluate_decoder --shards data/shards --features data/features --priors data/priors \
        --decoder data/models/decoder.pt --face-encoder data/models/face_encoder.pt \
        --probe data/models/attribute_probe.pt --attributes data/sample/speakers.json --out data/eval_decoder --metrics metrics/eval-decoder.json
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.common.params import require
from pipeline.common.schema import Device, Field, PositiveInt, Section
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.evaluate_decoder import evaluate_decoder, summary_line
from pipeline.faces.identity import DETECTORS


class Params(Section):
    """The ``evaluate_decoder`` section: the face decoder alone (Figures 4 and 2)."""

    SECTION: ClassVar[str] = "evaluate_decoder"
    max_samples: PositiveInt = Field(description="faces per split decoded")
    batch_size: PositiveInt = Field(description="faces per forward pass")
    recall_k: list[PositiveInt] = Field(min_length=1, description="k of the retrieval recall@k")
    figure_columns: PositiveInt = Field(description="speakers per row of Figure 4")
    identity_detector: Literal[DETECTORS] = Field(
        description="dlib detector of the identity metric: cnn (MMOD) or hog (about 60x faster); evaluate follows")
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


KEYS = ("max_samples", "batch_size", "recall_k", "figure_columns", "identity_detector", "device")


def add_arguments(parser) -> None:
    for name in ("shards", "features", "priors", "decoder", "face-encoder", "probe", "out", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--attributes", default="", help="speakers.json-style attributes file ('' = none)")


def body(args) -> str:
    start = time.perf_counter()
    params = args.section
    require(params, *KEYS, section="evaluate_decoder")
    m = evaluate_decoder(args.shards, args.features, args.priors, args.decoder, args.face_encoder, args.probe,
                         args.attributes, args.out, args.metrics, params)
    return f"{summary_line(m)}; {elapsed(start)} -> {args.out}"


main = stage_main("evaluate_decoder", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
