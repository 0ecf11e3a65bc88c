"""DVC stage ``train_encoder@variant``: train the speech encoder SE of one Table 4 variant (FD, VGGFace frozen)."""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.distributed import relaunched_summary
from pipeline.params import load_section
from pipeline.training import VARIANTS, elapsed, run_main, train_encoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
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
    args = parser.parse_args(argv)

    def body() -> str:
        start = time.perf_counter()
        params = load_section("train_encoder")
        launched = relaunched_summary(params, "stages.train_encoder", argv, "train_encoder")
        if launched is not None:
            return launched
        m = train_encoder(args.variant, args.shards, args.features, args.priors, args.gender, args.decoder,
                          args.face_encoder, args.out, args.metrics, args.plots, params)
        return (f"train_encoder[{args.variant}]: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
                f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
