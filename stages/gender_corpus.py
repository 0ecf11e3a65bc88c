"""DVC stage ``gender_corpus``: the manifest of the separately labelled corpus the voice gender classifier trains on.

    python -m stages.gender_corpus --csv "" --labels "" --out data/gender_corpus/manifest \
        --metrics metrics/gender_corpus.json

With an empty ``--csv`` (no gender corpus configured) it writes a manifest of no rows.
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.stage import elapsed, stage_main
from pipeline.data.gender_corpus import build_gender_corpus_manifest
from pipeline.data.manifest import ManifestConfig, ManifestKeys, summary_line, write_manifest


class Params(ManifestKeys):
    """The ``gender_corpus`` section: the separately labelled corpus of the voice gender classifier."""

    SECTION: ClassVar[str] = "gender_corpus"


def add_arguments(parser) -> None:
    parser.add_argument("--csv", default="", help='AVSpeech-format CSV of the labelled corpus; "" = none')
    parser.add_argument("--labels", default="", help="its labels CSV (video_id,speaker_id,gender,age_group)")
    parser.add_argument("--out", required=True, help="output directory for train/test/rejects parquet")
    parser.add_argument("--metrics", default="", help="metrics JSON path")


def body(args) -> str:
    started = time.perf_counter()
    cfg = ManifestConfig.from_params(args.section, section="gender_corpus")
    result = build_gender_corpus_manifest(args.csv, args.labels, cfg)
    write_manifest(result, args.out, args.metrics or None)
    if not result.counts["configured"]:
        return ("gender_corpus: none configured (gender_corpus.csv is empty): the gender classifier trains on the "
                "main manifest's labels")
    return f"gender_corpus: {summary_line(result.counts)} in {elapsed(started)} -> {args.out}"


main = stage_main("gender_corpus", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
