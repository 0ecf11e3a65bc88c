"""DVC stage ``preprocess``: raw clip shards → WebDataset sample shards + metrics.

    python -m stages.preprocess --raw data/raw --out data/shards --metrics metrics/preprocess.json
"""
from __future__ import annotations

import argparse
import sys

from pipeline.engine import EngineError, load_engine, shutdown
from pipeline.faces import DetectorError
from pipeline.io import write_json
from pipeline.media import require_ffmpeg
from pipeline.params import ParamsError, load_section
from pipeline.preprocess import PreprocessConfig, PreprocessError, run_preprocess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", required=True, help="directory of raw clip shards (download stage output)")
    parser.add_argument("--out", required=True, help="directory for the WebDataset shards")
    parser.add_argument("--metrics", required=True, help="metrics JSON to write")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    require_ffmpeg()
    try:
        cfg = PreprocessConfig.from_params(load_section("preprocess", args.params))
        metrics = run_preprocess(args.raw, args.out, cfg, engine=load_engine(args.params))
    except (ParamsError, PreprocessError, DetectorError, EngineError) as exc:
        print(f"preprocess: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    write_json(args.metrics, metrics)
    reasons = {**metrics["download_rejections"], **{}}
    for reason, n in metrics["preprocess_rejections"].items():
        reasons[reason] = reasons.get(reason, 0) + n
    by_reason = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
    print(f"preprocess: {metrics['rows_in']} rows in, {metrics['samples_out']} samples out "
          f"in {metrics['shards']} shard(s), {metrics['rejections_total']} rejected ({by_reason})"
          + ("" if metrics["counts_add_up"] else " [WARNING: counts do not add up]"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
