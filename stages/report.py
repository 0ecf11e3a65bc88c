"""DVC stage ``report``: Table 4 (Markdown), Figure 6 (face grid) and Figure 5 (loss curves) into ``reports/``."""
from __future__ import annotations

import argparse
import sys

from pipeline.params import load_section
from pipeline.report import write_report
from pipeline.training import run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--eval", required=True, help="directory of per-variant evaluation outputs (data/eval)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    def body() -> str:
        params = load_section("report")
        written = write_report(args.eval, args.out, params)
        return f"report: {len(written)} files -> {args.out} ({', '.join(p.name for p in written)})"

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
