"""DVC stage `sample`: generate the embedded synthetic dataset.

    python -m stages.sample --out data/sample
"""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.media import require_ffmpeg
from pipeline.params import ParamsError, load_section
from pipeline.sample.generate import SampleConfig, SampleConfigError, generate_sample
from pipeline.sample.generate import default_workers
from pipeline.sample.encode import EncodeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory (avspeech.csv, labels.csv, clips/)")
    parser.add_argument("--params", default="params.yaml", help="params file (section 'sample')")
    parser.add_argument("--workers", type=int, default=0,
                        help="rendering processes (0 = up to 4 by CPU count; the output is the same for any value)")
    args = parser.parse_args(argv)
    require_ffmpeg()
    t0 = time.perf_counter()
    try:
        cfg = SampleConfig.from_params(load_section("sample", args.params))
        summary = generate_sample(args.out, cfg, workers=args.workers or default_workers())
    except (ParamsError, SampleConfigError, EncodeError, TypeError) as exc:
        print(f"sample: error: {exc}", file=sys.stderr)
        return 2
    print(f"sample: {summary.speakers} speakers, {summary.clips} clips, {summary.seconds:.1f} s of video "
          f"in {time.perf_counter() - t0:.1f} s -> {summary.out_dir}/avspeech.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
