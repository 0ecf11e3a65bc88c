"""DVC stage ``train_decoder``: train the face decoder FD on the face corpus (crops and their face features)."""
from __future__ import annotations

import sys
import time

from pipeline.arspm.train_decoder import train_decoder
from pipeline.common.params import load_section
from pipeline.common.stage import elapsed, stage_main
from pipeline.training.distributed import relaunch_stage


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face-image corpus (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards (stage preprocess), for train_decoder.faces: shards or both")
    for name in ("features", "face-encoder", "out", "metrics", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("train_decoder", args.params)
    m = train_decoder(args.corpus, args.shards, args.features, args.face_encoder, args.out, args.metrics,
                      args.plots, params)
    return (f"train_decoder: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
            f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")


main = stage_main("train_decoder", __doc__, add_arguments, body, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
