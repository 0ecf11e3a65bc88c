"""DVC stage ``priors``: neutral and male/female face priors and the convergence table (paper Table 1).

    python -m stages.priors --features data/features --gender data/gender --manifest data/manifest \
        --out data/priors --metrics metrics/priors.json
"""
from __future__ import annotations

import sys

from pipeline.gender import known_genders
from pipeline.io import write_json
from pipeline.params import load_section
from pipeline.priors import capped_messages, run_priors, summary_line
from pipeline.stage import stage_main


def add_arguments(parser) -> None:
    parser.add_argument("--features", required=True, help="features directory (stage features)")
    parser.add_argument("--gender", required=True, help="gender directory with predictions.parquet")
    parser.add_argument("--manifest", required=True, help="manifest directory (the train split's speakers)")
    parser.add_argument("--out", required=True, help="output directory for priors.npz")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")


def body(args) -> str:
    genders = known_genders(args.gender, split="train")  # label where known, else the classifier's prediction
    metrics = run_priors(args.features, genders, args.manifest, args.out, load_section("priors", args.params))
    write_json(args.metrics, metrics)
    for line in capped_messages(metrics):
        print(line, file=sys.stderr)
    return summary_line(metrics)


main = stage_main("priors", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
