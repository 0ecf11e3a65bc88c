"""DVC stage ``preflight``: refuse in seconds a configuration that would stop hours in (see pipeline.data.preflight).

    python -m stages.preflight --out data/preflight.json
"""
from __future__ import annotations

import sys

from pipeline.arspm.variants import VARIANTS
from pipeline.common.io import atomic_write_bytes
from pipeline.common.params import load_section, require
from pipeline.common.stage import stage_main
from pipeline.data.preflight import PreflightError, check_gender_labels


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="marker file the manifest stage depends on")


def body(args) -> str:
    variants = load_section("train_encoder", args.params)
    require(variants, "variants", section="train_encoder")
    manifest = load_section("manifest", args.params)
    require(manifest, "labels", section="manifest")
    corpus = load_section("gender_corpus", args.params)
    require(corpus, "labels", section="gender_corpus")
    unknown = [v for v in variants["variants"] if v not in VARIANTS]
    if not isinstance(variants["variants"], list) or not variants["variants"] or unknown:
        raise PreflightError(f"params key 'train_encoder.variants' = {variants['variants']!r} is not allowed: it "
                             f"must be a non-empty list of {', '.join(VARIANTS)}")
    checked = check_gender_labels([str(v) for v in variants["variants"]], str(manifest["labels"] or ""),
                                  str(corpus["labels"] or ""))
    # Constant content: a passed check never makes the manifest stage rerun.
    atomic_write_bytes(args.out, b'{"preflight": "passed"}\n')
    labels, corpus_labels = checked["gender_labels"], checked["gender_corpus_labels"]
    return (f"preflight: {len(checked['gender_variants'])} gender variants"
            + (f", {labels} gender-labelled rows" if labels is not None else "")
            + (f", {corpus_labels} in the gender corpus" if corpus_labels else "") + ": ok")


main = stage_main("preflight", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
