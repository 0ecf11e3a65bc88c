"""DVC stage ``train_encoder@variant``: train the speech encoder SE of one Table 4 variant (FD, VGGFace frozen)."""
from __future__ import annotations

import sys
import time

from pipeline.arspm.train_encoder import train_encoder
from pipeline.arspm.variants import VARIANTS
from pipeline.common.params import load_section
from pipeline.common.stage import elapsed, stage_main
from pipeline.training.distributed import relaunch_stage


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    for name in ("shards", "features", "priors", "gender", "decoder", "face-encoder", "out", "metrics", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("train_encoder", args.params)
    m = train_encoder(args.variant, args.shards, args.features, args.priors, args.gender, args.decoder,
                      args.face_encoder, args.out, args.metrics, args.plots, params)
    return (f"train_encoder[{args.variant}]: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
            f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")


main = stage_main("train_encoder", __doc__, add_arguments, body, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
