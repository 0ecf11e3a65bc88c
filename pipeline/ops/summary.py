"""Print the Table 4 summary and where the results are (``make demo`` runs this after ``dvc repro``)."""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline.common.io import read_json


def summary_text(reports_dir: str | Path = "reports") -> str:
    """The report's Table 4 Markdown, the learn-something gate and the paths of every result."""
    reports_dir = Path(reports_dir)
    table = reports_dir / "table4.md"
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found: run `dvc repro` first")
    lines = [table.read_text(encoding="utf-8").rstrip(), ""]
    summary = reports_dir / "summary.json"
    if summary.is_file():
        gate = read_json(summary)["gate"]
        verdict = "LEARNED (above chance)" if gate["above_chance"] else "did NOT beat chance"
        lines.append(f"==> {gate['variant']} recall@{gate['k']} {gate['recall']:.3f} vs chance "
                     f"{gate['chance']:.3f}: {verdict}")
    lines += ["==> results:",
              f"    table:        {table}",
              f"    face grid:    {reports_dir / 'figure6.png'} (rows: original, Face-to-Face, each variant)",
              f"    loss curves:  {reports_dir / 'figure5.png'}  (interactive: dvc plots show)",
              f"    decoder:      {reports_dir / 'figure4.png'} (original vs FD(true feature)), "
              f"{reports_dir / 'figure2.png'} (FD(neutral prior) per n)",
              "    per variant:  metrics/eval-<variant>.json, data/eval/<variant>/ (per_sample.parquet, grid.png)",
              "    models:       data/models/ (try: python -m pipeline.serve.predict --help)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    reports = Path(args[0] if args else "reports")
    if not (reports / "table4.md").is_file():
        print(f"error: {reports / 'table4.md'} not found: run `dvc repro` first", file=sys.stderr)
        return 2
    print(summary_text(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
