"""DVC stage ``gender_corpus``: the manifest of the separately labelled corpus the voice gender classifier trains on.

    python -m stages.gender_corpus --csv "" --labels "" --out data/gender_corpus/manifest \
        --metrics metrics/gender_corpus.json

With an empty ``--csv`` (no gender corpus configured) it writes a manifest of no rows.
"""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.gender_corpus import build_gender_corpus_manifest
from pipeline.manifest import ManifestConfig, ManifestError, summary_line, write_manifest
from pipeline.params import ParamsError, load_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default="", help='AVSpeech-format CSV of the labelled corpus; "" = none')
    parser.add_argument("--labels", default="", help="its labels CSV (video_id,speaker_id,gender,age_group)")
    parser.add_argument("--out", required=True, help="output directory for train/test/rejects parquet")
    parser.add_argument("--metrics", default="", help="metrics JSON path")
    parser.add_argument("--params", default="params.yaml", help="params file (section 'gender_corpus')")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    try:
        cfg = ManifestConfig.from_params(load_section("gender_corpus", args.params), section="gender_corpus")
        result = build_gender_corpus_manifest(args.csv, args.labels, cfg)
        write_manifest(result, args.out, args.metrics or None)
    except (ParamsError, ManifestError) as exc:
        print(f"gender_corpus: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gender_corpus: error: cannot read or write a file: {exc}", file=sys.stderr)
        return 2
    if not result.counts["configured"]:
        print("gender_corpus: none configured (gender_corpus.csv is empty): the gender classifier trains on the "
              "main manifest's labels")
    else:
        print(f"gender_corpus: {summary_line(result.counts)} in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
