"""DVC stage ``face_encoder``: VGGFace from verified pretrained weights, or trained on the face-image corpus.

    python -m stages.face_encoder --corpus data/face_corpus --shards data/shards \
        --out data/models/face_encoder.pt --metrics metrics/face_encoder.json
"""
from __future__ import annotations

import sys
import time

from pipeline.common.params import load_section
from pipeline.common.stage import elapsed, stage_main
from pipeline.faces.face_encoder import build_face_encoder, summary_line
from pipeline.training.distributed import relaunch_stage


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face-image corpus to train on (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess): the crop size to match")
    for name, what in (("out", "output checkpoint path"), ("metrics", "metrics JSON path"),
                       ("plots", "dvclive directory of the training curves")):
        parser.add_argument(f"--{name}", required=True, help=what)


def body(args) -> str | None:
    started = time.perf_counter()
    params = load_section("face_encoder", args.params)
    metrics = build_face_encoder(args.corpus, args.shards, args.out, args.metrics, args.plots, params)
    return None if metrics is None else summary_line(metrics, elapsed(started))  # None: a rank other than 0


main = stage_main("face_encoder", __doc__, add_arguments, body, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
