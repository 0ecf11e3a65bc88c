"""DVC stage ``gender``: the voice gender classifier, its held-out accuracy, and a gender for every sample.

    python -m stages.gender --shards data/shards --corpus data/gender_corpus/shards --out data/gender \
        --metrics metrics/gender.json
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.arspm.gender import run_gender, summary_line
from pipeline.common.io import write_json
from pipeline.common.schema import Field, PositiveFloat
from pipeline.common.stage import elapsed, stage_main
from pipeline.training.distributed import relaunch_stage
from pipeline.training.params import TrainingKeys


class Params(TrainingKeys):
    """The ``gender`` section: the voice gender classifier."""

    SECTION: ClassVar[str] = "gender"
    width: PositiveFloat = Field(description="channel multiplier")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess)")
    parser.add_argument("--corpus", default="", help="shards of the labelled gender corpus (stage "
                        "gender_corpus_preprocess; empty when none is configured)")
    parser.add_argument("--out", required=True, help="output directory (model.pt, predictions.parquet)")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--plots", required=True, help="dvclive directory of the training curves")


def body(args) -> str | None:
    started = time.perf_counter()
    params = args.section
    metrics = run_gender(args.shards, args.out, params, args.plots, corpus_dir=args.corpus or None)
    if metrics is None:  # another rank than 0 under torchrun
        return None
    write_json(args.metrics, metrics)
    return summary_line(metrics, elapsed(started))


main = stage_main("gender", __doc__, add_arguments, body, schema=Params, relaunch=relaunch_stage)

if __name__ == "__main__":
    sys.exit(main())
