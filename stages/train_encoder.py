"""DVC stage ``train_encoder@variant``: train the speech encoder SE of one Table 4 variant (FD, VGGFace frozen)."""
from __future__ import annotations

import sys
import time

from pipeline.distributed import relaunched_summary
from pipeline.params import load_section
from pipeline.stage import elapsed, run_stage
from pipeline.train_encoder import train_encoder
from pipeline.variants import VARIANTS


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    parser.add_argument("--shards", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--priors", required=True)
    parser.add_argument("--gender", required=True)
    parser.add_argument("--decoder", required=True)
    parser.add_argument("--face-encoder", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("train_encoder", args.params)
    launched = relaunched_summary(params, "stages.train_encoder", args.command_line, "train_encoder")
    if launched is not None:
        return launched
    m = train_encoder(args.variant, args.shards, args.features, args.priors, args.gender, args.decoder,
                      args.face_encoder, args.out, args.metrics, args.plots, params)
    return (f"train_encoder[{args.variant}]: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
            f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("train_encoder", __doc__, add_arguments, body, argv)


if __name__ == "__main__":
    sys.exit(main())
