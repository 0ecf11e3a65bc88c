"""DVC stage ``report``: Table 4 (Markdown), Figures 6, 5, 4 and 2 and the attribute agreement into ``reports/``."""
from __future__ import annotations

import argparse
import sys

from pipeline.params import load_section
from pipeline.report import write_report
from pipeline.training import run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True, help="directory of per-variant evaluation outputs (data/eval)")
    parser.add_argument("--eval-decoder", required=True, help="the decoder's evaluation (data/eval_decoder)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    def body() -> str:
        params = load_section("report")
        written = write_report(args.eval, args.out, params, args.eval_decoder)
        return f"report: {len(written)} files -> {args.out} ({', '.join(p.name for p in written)})"

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
