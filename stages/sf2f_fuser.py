"""DVC stage ``sf2f_fuser``: SF2F's attention fuser over each clip's segments, encoder and decoder frozen."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.stage import elapsed, stage_main
from pipeline.families.sf2f.params import Sf2fKeys


class Params(Sf2fKeys):
    """The ``sf2f_fuser`` section: SF2F's second stage (the fuser; the architecture comes from ``sf2f_train``)."""

    SECTION: ClassVar[str] = "sf2f_fuser"


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    parser.add_argument("--first-stage", required=True, help="sf2f_train's checkpoint")
    parser.add_argument("--face-encoder", required=True, help="face encoder (the perceptual loss's network)")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.families.sf2f.train import train_fuser
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    m = train_fuser(args.shards, args.first_stage, args.face_encoder, args.out, args.metrics, args.plots,
                    args.section)
    write_cost(args.cost, start, m["parameters"])
    return (f"sf2f_fuser: {m['steps']} steps, loss {m['first_epoch_loss']:.3f} -> {m['final']['loss']:.3f} "
            f"(L1 {m['final']['l1']:.3f}) in {elapsed(start)} -> {args.out}")


main = stage_main("sf2f_fuser", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
