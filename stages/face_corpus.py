"""DVC stage ``face_corpus``: still face crops of many synthetic identities with their attributes.

    python -m stages.face_corpus --out data/face_corpus
"""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.params import ParamsError, load_section
from pipeline.sample.corpus import CorpusConfig, CorpusError, generate_face_corpus


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (train-NNNNNN.tar shards, identities.json)")
    parser.add_argument("--params", default="params.yaml", help="params file (section 'face_corpus')")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        cfg = CorpusConfig.from_params(load_section("face_corpus", args.params))
        counts = generate_face_corpus(args.out, cfg)
    except (ParamsError, CorpusError, TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"face_corpus: {counts['identities']} identities x {cfg.images_per_identity} images = "
          f"{counts['images']} face crops of {cfg.image_size}px in {counts['shards']} shard(s), "
          f"{time.perf_counter() - started:.1f}s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
