"""DVC stage ``evaluate@variant``: Table 4 metrics, retrieval recall@k and attribute agreement on the test split."""
from __future__ import annotations

import sys
import time

from pipeline.evaluate import evaluate_variant
from pipeline.params import load_section
from pipeline.stage import elapsed, run_stage
from pipeline.variants import VARIANTS


def add_arguments(parser) -> None:
    parser.add_argument("--variant", required=True, help=f"one of {', '.join(VARIANTS)}")
    parser.add_argument("--shards", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--priors", required=True)
    parser.add_argument("--gender", required=True)
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--decoder", required=True)
    parser.add_argument("--face-encoder", required=True)
    parser.add_argument("--probe", required=True, help="attribute probe checkpoint (stage attribute_probe)")
    parser.add_argument("--identity", default="",
                        help="test faces' identity embeddings (data/eval_decoder/identity.npz; \"\" = embed here)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--metrics", required=True)


def body(args) -> str:
    start = time.perf_counter()
    params = load_section("evaluate", args.params)
    m = evaluate_variant(args.variant, args.shards, args.features, args.priors, args.gender, args.encoder,
                         args.decoder, args.face_encoder, args.out, args.metrics, params, args.probe,
                         str(params["attributes"]), args.identity)
    recall = ", ".join(f"R@{k} {v:.3f} (chance {m['recall_chance'][k]:.3f})" for k, v in m["recall"].items())
    return (f"evaluate[{args.variant}]: {m['n_samples']} test samples, {m['n_speakers']} speakers; "
            f"angle {m['angle']:.2f} deg, angle' {m['primed_angle']:.2f} deg; {recall}; in {elapsed(start)}")


def main(argv: list[str] | None = None) -> int:
    return run_stage("evaluate", __doc__, add_arguments, body, argv)


if __name__ == "__main__":
    sys.exit(main())
