"""DVC stage ``compare``: every model family's faces for the same test clips, scored by the judge.

    python -m stages.compare --shards data/shards --judge data/models/judge.pt \\
        --probe data/models/attribute_probe.pt --attributes data/sample/speakers.json \\
        --input sf2f.checkpoint=data/models/sf2f_fuser.pt --cost sf2f:metrics/cost/sf2f_train.json ... \\
        --out data/compare --metrics metrics/compare.json --cost-out metrics/compare_cost.json
"""
from __future__ import annotations

import sys
import time
from typing import Annotated, ClassVar, Literal

from pipeline.common.schema import Device, Field, NonNegativeInt, PositiveInt, Section, Seed
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.families import FAMILIES

FAMILY_NAMES = Literal[tuple(FAMILIES)]  # the families pipeline.evaluation.families knows


class Params(Section):
    """The ``compare`` section: which families are drawn and how they are scored."""

    SECTION: ClassVar[str] = "compare"
    families: list[FAMILY_NAMES] = Field(min_length=1, description="families drawn and scored (AR-SPM as "
                                                                   "neutral_fc)")
    recall_k: list[PositiveInt] = Field(min_length=1, max_length=8, description="k of recall@k, sample and speaker "
                                                                                "level")
    kway_k: list[Annotated[int, Field(ge=2)]] = Field(min_length=1, max_length=8,
                                                      description="K of K-way matching (one's own face among K)")
    kway_trials: PositiveInt = Field(description="seeded K-way draws per test clip")
    max_samples: NonNegativeInt = Field(description="test clips drawn (the first in shard order; 0 = all)")
    batch_size: PositiveInt = Field(description="spectrograms per generator call")
    noise_voices: NonNegativeInt = Field(description="test voices of a sampling family's disentanglement grid (0 = "
                                                     "no grid)")
    noise_draws: PositiveInt = Field(description="seeds (z) per voice in that grid")
    seed: Seed
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess): the test split")
    parser.add_argument("--judge", required=True, help="the judge (stage judge)")
    parser.add_argument("--probe", required=True, help="the attribute probe (stage attribute_probe)")
    parser.add_argument("--attributes", required=True, help='speakers\' attributes JSON ("" = none)')
    parser.add_argument("--input", action="append", default=[], metavar="FAMILY.KEY=PATH",
                        help="a file a family's generator loads (repeatable)")
    parser.add_argument("--cost", action="append", default=[], metavar="FAMILY:PATH",
                        help="a family's training stage's cost file (repeatable)")
    for name in ("out", "metrics", "cost-out"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.evaluation.compare import parse_inputs, run_compare

    start = time.perf_counter()
    params = args.section
    m = run_compare(args.shards, args.judge, args.probe, args.attributes or None, parse_inputs(args.input),
                    args.cost, args.out, args.metrics, args.cost_out, params)
    recalls = ", ".join(f"{name} {r['sample_recall'].get('recall@5', float('nan')):.3f}"
                        for name, r in m["families"].items())
    return (f"compare: {len(m['families'])} families on {m['test_clips']} test clips of {m['test_speakers']} "
            f"speakers, judged by {m['judge']['name']}; recall@5 {recalls} in {elapsed(start)} -> {args.out}")


main = stage_main("compare", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
