"""DVC stage ``priors``: neutral and male/female face priors and the convergence table (paper Table 1).

    python -m stages.priors --features data/features --gender data/gender --manifest data/manifest \
        --out data/priors --metrics metrics/priors.json
"""
from __future__ import annotations

import sys
from typing import ClassVar, Literal

from pipeline.arspm.gender_predictions import known_genders
from pipeline.arspm.priors import capped_messages, run_priors, summary_line
from pipeline.common.io import write_json
from pipeline.common.schema import Field, PositiveInt, Section, Seed
from pipeline.common.stage import stage_main


class Params(Section):
    """The ``priors`` section: the neutral and gender face priors and their convergence table."""

    SECTION: ClassVar[str] = "priors"
    n: PositiveInt = Field(description="prior size (balanced: speakers; random: clips)")
    neutral: Literal["balanced", "random"] = Field(description="how the neutral prior's samples are drawn")
    seed: Seed
    convergence_n: list[PositiveInt] = Field(description="prior sizes of the convergence table (Table 1)")


INPUTS = {"features": "features directory (stage features)",
          "gender": "gender directory with predictions.parquet",
          "manifest": "manifest directory (the train split's speakers)",
          "out": "output directory for priors.npz, the per-variant archives and neutral-faces.json",
          "metrics": "metrics JSON path"}


def add_arguments(parser) -> None:
    for name, what in INPUTS.items():
        parser.add_argument(f"--{name}", required=True, help=what)


def body(args) -> str:
    genders = known_genders(args.gender, split="train")  # label where known, else the classifier's prediction
    metrics = run_priors(args.features, genders, args.manifest, args.out, args.section)
    write_json(args.metrics, metrics)
    for line in capped_messages(metrics):
        print(line, file=sys.stderr)
    return summary_line(metrics)


main = stage_main("priors", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
