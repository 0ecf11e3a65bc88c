"""DVC stage ``preprocess``: raw clip shards → WebDataset sample shards + metrics.

    python -m stages.preprocess --raw data/raw --out data/shards --metrics metrics/preprocess.json
"""
from __future__ import annotations

import sys

from pipeline.common.io import write_json
from pipeline.common.params import load_section
from pipeline.common.stage import stage_main
from pipeline.data.engine import load_engine, shutdown
from pipeline.data.media import require_ffmpeg
from pipeline.data.preprocess import PreprocessConfig, run_preprocess, summary_line


def add_arguments(parser) -> None:
    parser.add_argument("--raw", required=True, help="directory of raw clip shards (download stage output)")
    parser.add_argument("--out", required=True, help="directory for the WebDataset shards")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")


def body(args) -> str:
    require_ffmpeg()
    try:
        cfg = PreprocessConfig.from_params(load_section("preprocess", args.params))
        metrics = run_preprocess(args.raw, args.out, cfg, engine=load_engine(args.params))
    finally:
        shutdown()
    write_json(args.metrics, metrics)
    return summary_line(metrics)


main = stage_main("preprocess", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
