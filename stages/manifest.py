"""DVC stage `manifest`: validate the AVSpeech-format CSV, attach labels, write the seeded group-disjoint split.

    python -m stages.manifest --csv data/sample/avspeech.csv --labels data/sample/labels.csv \
        --out data/manifest --metrics metrics/manifest.json
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from pipeline.manifest import ManifestConfig, ManifestError, build_manifest, read_labels, summary_line, write_manifest
from pipeline.params import ParamsError, load_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", required=True, help="AVSpeech-format CSV: source,start,end,x,y (no header)")
    parser.add_argument("--labels", default="", help='labels CSV (video_id,speaker_id,gender,age_group); "" = none')
    parser.add_argument("--out", required=True, help="output directory for train/test/rejects parquet")
    parser.add_argument("--metrics", default="", help="metrics JSON path")
    parser.add_argument("--params", default="params.yaml", help="params file (section 'manifest')")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        cfg = ManifestConfig.from_params(load_section("manifest", args.params))
        problems: Counter = Counter()  # bad label rows are counted and left out, not fatal
        labels = read_labels(args.labels, problems) if args.labels else None
        result = build_manifest(args.csv, labels, cfg, label_problems=problems, labels_path=args.labels)
        write_manifest(result, args.out, args.metrics or None)
    except (ParamsError, ManifestError) as exc:
        print(f"manifest: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"manifest: error: cannot read or write a file: {exc}", file=sys.stderr)
        return 2
    print(f"manifest: {summary_line(result.counts)} in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
