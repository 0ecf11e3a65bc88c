"""DVC stage ``report``: Table 4 (Markdown), Figures 6, 5, 4 and 2, the attribute agreement and the families'
comparison (families.md, families_cost.md, families.png) into ``reports/``."""
from __future__ import annotations

import sys
from typing import ClassVar

from pipeline.common.schema import Field, PositiveInt, Section
from pipeline.common.stage import stage_main
from pipeline.evaluation.report import write_report


class Params(Section):
    """The ``report`` section: Table 4 and the figures."""

    SECTION: ClassVar[str] = "report"
    grid_columns: PositiveInt = Field(description="test speakers per row of Figure 6")


def add_arguments(parser) -> None:
    parser.add_argument("--eval", required=True, help="directory of per-variant evaluation outputs (data/eval)")
    parser.add_argument("--eval-decoder", required=True, help="the decoder's evaluation (data/eval_decoder)")
    parser.add_argument("--compare", required=True, help="the families' comparison (data/compare)")
    parser.add_argument("--compare-cost", required=True, help="the comparison's cost file")
    parser.add_argument("--out", required=True)


def body(args) -> str:
    params = args.section
    from pipeline.evaluation.families_report import write_families_report

    written = write_report(args.eval, args.out, params, args.eval_decoder)
    written += write_families_report(args.compare, args.compare_cost, args.out, int(params["grid_columns"]))
    return f"report: {len(written)} files -> {args.out} ({', '.join(p.name for p in written)})"


main = stage_main("report", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
