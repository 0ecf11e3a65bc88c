"""DVC stage `manifest`: validate the AVSpeech-format CSV, attach labels, write the seeded group-disjoint split.

    python -m stages.manifest --csv data/sample/avspeech.csv --labels data/sample/labels.csv \
        --out data/manifest --metrics metrics/manifest.json
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from typing import ClassVar

from pipeline.common.stage import elapsed, stage_main
from pipeline.data.manifest import (
    ManifestConfig,
    ManifestKeys,
    build_manifest,
    read_labels,
    summary_line,
    write_manifest,
)


class Params(ManifestKeys):
    """The ``manifest`` section: the CSV, its labels and the speaker split."""

    SECTION: ClassVar[str] = "manifest"


def add_arguments(parser) -> None:
    parser.add_argument("--csv", required=True, help="AVSpeech-format CSV: source,start,end,x,y (no header)")
    parser.add_argument("--labels", default="", help='labels CSV (video_id,speaker_id,gender,age_group); "" = none')
    parser.add_argument("--out", required=True, help="output directory for train/test/rejects parquet")
    parser.add_argument("--metrics", default="", help="metrics JSON path")


def body(args) -> str:
    started = time.perf_counter()
    cfg = ManifestConfig.from_params(args.section)
    problems: Counter = Counter()  # bad label rows are counted and left out, not fatal
    labels = read_labels(args.labels, problems) if args.labels else None
    result = build_manifest(args.csv, labels, cfg, label_problems=problems, labels_path=args.labels)
    write_manifest(result, args.out, args.metrics or None)
    return f"manifest: {summary_line(result.counts)} in {elapsed(started)} -> {args.out}"


main = stage_main("manifest", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
