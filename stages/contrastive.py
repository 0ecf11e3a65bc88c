"""DVC stage ``contrastive``: voice and face encoders trained from scratch to match a clip's voice and face among
the other clips of a batch (InfoNCE both ways, learnable temperature), reading no label."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, NonNegativeInt, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.families.contrastive.params import LabelFreeKeys

#: the matching metrics' K (K-way, chance 1/K) and k (recall@k) on the test split, and the seeded draws per clip
KWAY_K = (2, 5, 10)
RECALL_K = (1, 5, 10)
KWAY_TRIALS = 100


class Params(LabelFreeKeys):
    """The ``contrastive`` section: the encoders' sizes, the training window and the optimiser."""

    SECTION: ClassVar[str] = "contrastive"
    speech_channels: list[PositiveInt] = Field(min_length=1, max_length=8,
                                               description="speech encoder's widths: a 3-wide convolution to the "
                                                           "first, then a stride-2 block per width (each halves time)")
    face_widths: list[PositiveInt] = Field(min_length=1, max_length=8,
                                           description="face encoder's stride-2 4x4 convolutions")
    embed_dim: PositiveInt = Field(description="embedding width: pooled speech, face and each time token")
    crop_frames: NonNegativeInt = Field(description="10-ms frames of the random training window per clip (0 = the "
                                                    "whole 598)")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def matching_metrics(embeddings: dict, seed: int = 0) -> dict:
    """K-way matching and voice→face recall@k of the encoders on the test clips, label-free: the groups are
    videos (distinct videos stand in for distinct speakers; on the demo each clip is its own video)."""
    from pipeline.evaluation import compare_metrics as cm

    speech, faces, groups = embeddings["speech"], embeddings["faces"], embeddings["video_ids"]
    if len(set(groups)) < 2:
        return {"n": len(groups), "note": "fewer than 2 test videos: no matching metric"}
    return {"kway": cm.kway_accuracy(speech, faces, groups, KWAY_K, trials=KWAY_TRIALS, seed=seed),
            "recall": cm.sample_recall(speech, faces, [k for k in RECALL_K if k <= len(groups)] or [1]),
            "groups": "video_id", "videos": len(set(groups))}


def body(args) -> str:
    from pipeline.common.io import write_json
    from pipeline.families.contrastive.train import (
        embed_split,
        train_contrastive,
        warn_labels_ignored,
    )
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    warn_labels_ignored("contrastive", args.section)
    model, m = train_contrastive(args.shards, args.out, args.plots, args.section)
    device = next(model.parameters()).device
    m["test"] = matching_metrics(embed_split(model, args.shards, "test", device))
    write_json(args.metrics, m)  # seconds go to the cost file: same seed, same metrics bytes
    write_cost(args.cost, start, m["parameters"])
    two_way = (m["test"].get("kway") or {}).get("accuracy@2")
    return (f"contrastive: {m['steps']} steps, loss {m['first_epoch_loss']:.3f} -> {m['final']['loss']:.3f}, "
            f"test 2-way matching {'-' if two_way is None else f'{two_way:.3f}'} (chance 0.5) in {elapsed(start)} "
            f"-> {args.out}")


main = stage_main("contrastive", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
