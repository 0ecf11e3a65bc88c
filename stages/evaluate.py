"""DVC stage ``evaluate@variant``: Table 4 metrics, retrieval recall@k and attribute agreement on the test split."""
from __future__ import annotations

import sys
import time

from pipeline.arspm.variants import VARIANTS
from pipeline.common.params import load_section
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.evaluate import evaluate_variant, summary_line


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    for name in ("shards", "features", "priors", "gender", "encoder", "decoder", "face-encoder", "out", "metrics"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--probe", required=True, help="attribute probe checkpoint (stage attribute_probe)")
    parser.add_argument("--identity", default="",
                        help="test faces' identity embeddings (data/eval_decoder/identity.npz; \"\" = embed here)")


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("evaluate", args.params)
    m = evaluate_variant(args.variant, args.shards, args.features, args.priors, args.gender, args.encoder,
                         args.decoder, args.face_encoder, args.out, args.metrics, params, args.probe,
                         str(params["attributes"]), args.identity)
    return summary_line(args.variant, m, elapsed(start))


main = stage_main("evaluate", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
