"""DVC stage ``evaluate@variant``: Table 4 metrics, retrieval recall@k and attribute agreement on the test split."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.arspm.variants import VARIANTS
from pipeline.common.schema import Device, Field, PathText, PositiveInt, Section
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.evaluate import evaluate_variant, summary_line


class Params(Section):
    """The ``evaluate`` section: Table 4's columns, recall@k and attribute agreement per variant."""

    SECTION: ClassVar[str] = "evaluate"
    attributes: PathText = Field(description="the speakers' face attributes (JSON)")
    batch_size: PositiveInt = Field(description="clips per forward pass")
    recall_k: list[PositiveInt] = Field(min_length=1, description="k of the retrieval recall@k")
    grid_rows: PositiveInt = Field(description="test speakers in the sample grid")
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    for name in ("shards", "features", "priors", "gender", "encoder", "decoder", "face-encoder", "out", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--probe", required=True, help="attribute probe checkpoint (stage attribute_probe)")
    parser.add_argument("--identity", default="",
                        help="test faces' identity embeddings (data/eval_decoder/identity.npz; \"\" = embed here)")


def body(args) -> str:
    start = time.perf_counter()
    params = args.section
    m = evaluate_variant(args.variant, args.shards, args.features, args.priors, args.gender, args.encoder,
                         args.decoder, args.face_encoder, args.out, args.metrics, params, args.probe,
                         str(params["attributes"]), args.identity)
    return summary_line(args.variant, m, elapsed(start))


main = stage_main("evaluate", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
