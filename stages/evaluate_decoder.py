"""DVC stage ``evaluate_decoder``: the face decoder alone: Face-to-Face pixels, diversity, retrieval, attributes,
paper Figures 4 and 2.

    python -m stages.evaluate_decoder --shards data/shards --features data/features --priors data/priors \
        --decoder data/models/decoder.pt --face-encoder data/models/face_encoder.pt \
        --probe data/models/attribute_probe.pt --attributes data/sample/speakers.json --out data/eval_decoder --metrics metrics/eval-decoder.json
"""
from __future__ import annotations

import sys
import time

from pipeline.common.params import load_section, require
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.evaluate_decoder import evaluate_decoder, summary_line

KEYS = ("max_samples", "batch_size", "recall_k", "figure_columns", "device")


def add_arguments(parser) -> None:
    for name in ("shards", "features", "priors", "decoder", "face-encoder", "probe", "out", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--attributes", default="", help="speakers.json-style attributes file ('' = none)")


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("evaluate_decoder", args.params)
    require(params, *KEYS, section="evaluate_decoder")
    m = evaluate_decoder(args.shards, args.features, args.priors, args.decoder, args.face_encoder, args.probe,
                         args.attributes, args.out, args.metrics, params)
    return f"{summary_line(m)}; {elapsed(start)} -> {args.out}"


main = stage_main("evaluate_decoder", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
