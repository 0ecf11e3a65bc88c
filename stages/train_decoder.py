"""DVC stage ``train_decoder``: train the face decoder FD on the face corpus (crops and their face features)."""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.distributed import relaunched_summary
from pipeline.params import load_section
from pipeline.training import elapsed, run_main, train_decoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", required=True, help="face-image corpus (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards (stage preprocess), for train_decoder.faces: shards")
    parser.add_argument("--features", required=True)
    parser.add_argument("--face-encoder", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--plots", required=True)
    args = parser.parse_args(argv)

    def body() -> str:
        start = time.perf_counter()
        params = load_section("train_decoder")
        launched = relaunched_summary(params, "stages.train_decoder", argv, "train_decoder")
        if launched is not None:
            return launched
        m = train_decoder(args.corpus, args.shards, args.features, args.face_encoder, args.out, args.metrics, args.plots, params)
        return (f"train_decoder: {m['epochs']} epochs x {m['samples_per_epoch']} samples, loss "
                f"{m['first_epoch_loss']:.4f} -> {m['final']['loss']:.4f} in {elapsed(start)} -> {args.out}")

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
