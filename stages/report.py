"""DVC stage ``report``: Table 4 (Markdown), Figures 6, 5, 4 and 2 and the attribute agreement into ``reports/``."""
from __future__ import annotations

import sys

from pipeline.common.params import load_section
from pipeline.common.stage import stage_main
from pipeline.evaluation.report import write_report


def add_arguments(parser) -> None:
    parser.add_argument("--eval", required=True, help="directory of per-variant evaluation outputs (data/eval)")
    parser.add_argument("--eval-decoder", required=True, help="the decoder's evaluation (data/eval_decoder)")
    parser.add_argument("--out", required=True)


def body(args) -> str:
    params = load_section("report", args.params)
    written = write_report(args.eval, args.out, params, args.eval_decoder)
    return f"report: {len(written)} files -> {args.out} ({', '.join(p.name for p in written)})"


main = stage_main("report", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
