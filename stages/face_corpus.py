"""DVC stage ``face_corpus``: still face crops of many synthetic identities with their attributes.

    python -m stages.face_corpus --out data/face_corpus
"""
from __future__ import annotations

import sys
import time

from pipeline.common.params import load_section
from pipeline.common.stage import elapsed, stage_main
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.data.sample.face import drawing_workers


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (train-NNNNNN.tar shards, identities.json)")


def body(args) -> str:
    started = time.perf_counter()
    cfg = CorpusConfig.from_params(load_section("face_corpus", args.params))
    counts = generate_face_corpus(args.out, cfg, workers=drawing_workers())
    return (f"face_corpus: {counts['identities']} identities x {cfg.images_per_identity} images = "
            f"{counts['images']} face crops of {cfg.image_size}px in {counts['shards']} shard(s), "
            f"{elapsed(started)} -> {args.out}")


main = stage_main("face_corpus", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
