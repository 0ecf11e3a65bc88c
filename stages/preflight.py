"""DVC stage ``preflight``: refuse in seconds a configuration that would stop hours in (see pipeline.preflight).

    python -m stages.preflight --out data/preflight.json
"""
from __future__ import annotations

import argparse
import sys

from pipeline.io import atomic_write_bytes
from pipeline.params import ParamsError, load_section, require
from pipeline.preflight import PreflightError, check_gender_labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="marker file the manifest stage depends on")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        variants = load_section("train_encoder", args.params)
        require(variants, "variants", section="train_encoder")
        manifest = load_section("manifest", args.params)
        require(manifest, "labels", section="manifest")
        corpus = load_section("gender_corpus", args.params)
        require(corpus, "labels", section="gender_corpus")
        checked = check_gender_labels([str(v) for v in variants["variants"]], str(manifest["labels"] or ""),
                                      str(corpus["labels"] or ""))
    except (ParamsError, PreflightError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Constant content: a passed check never makes the manifest stage rerun.
    atomic_write_bytes(args.out, b'{"preflight": "passed"}\n')
    labels, corpus = checked["gender_labels"], checked["gender_corpus_labels"]
    print(f"preflight: {len(checked['gender_variants'])} gender variants"
          + (f", {labels} gender-labelled rows" if labels is not None else "")
          + (f", {corpus} in the gender corpus" if corpus else "") + ": ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
