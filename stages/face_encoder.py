"""DVC stage ``face_encoder``: VGGFace from verified pretrained weights, or trained on the face-image corpus.

    python -m stages.face_encoder --corpus data/face_corpus --shards data/shards \
        --out data/models/face_encoder.pt --metrics metrics/face_encoder.json
"""
from __future__ import annotations

import sys
import time

from pipeline.distributed import relaunch_stage
from pipeline.face_encoder import build_face_encoder
from pipeline.params import load_section
from pipeline.stage import elapsed, stage_main


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face-image corpus to train on (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess): the crop size to match")
    parser.add_argument("--out", required=True, help="output checkpoint path")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--plots", required=True, help="dvclive directory of the training curves")


def body(args) -> str | None:
    started = time.perf_counter()
    params = load_section("face_encoder", args.params)
    metrics = build_face_encoder(args.corpus, args.shards, args.out, args.metrics, args.plots, params)
    if metrics is None:  # another rank than 0 under torchrun
        return None
    detail = (f"held-out identity accuracy {metrics['heldout_acc']:.3f} over {metrics['n_heldout']} clips "
              f"(chance {metrics['chance_acc']:.3f}), {metrics['n_identities']} identities"
              if metrics.get("heldout_acc") is not None else f"source {metrics['source']}")
    return (f"face_encoder: {detail}; {metrics['n_params']} parameters, {metrics['image_size']}px, "
            f"feature dim {metrics['feature_dim']}, {elapsed(started)}")


main = stage_main("face_encoder", __doc__, add_arguments, body, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
