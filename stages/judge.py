"""DVC stage ``judge``: the identity-embedding network that scores every family's generated faces.

    python -m stages.judge --corpus data/judge_corpus --face-corpus data/face_corpus --out data/models/judge.pt \
        --metrics metrics/judge.json --plots plots/judge

``kind: trained`` trains ``models.judge`` (a small ResNet with a CosFace head) on the judge corpus, after checking
that none of its identities is the face corpus's; ``kind: dlib`` writes a header-only checkpoint naming dlib's ResNet
face recognizer (by its files' SHA-256). Either way consumers load ``--out`` with
``pipeline.evaluation.judge.load_judge``. Both measure the judge on the judge corpus's held-out identities.
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.common.schema import Field, Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.evaluation.judge import build_judge, summary_line
from pipeline.training.params import AdamKeys


class Params(AdamKeys):
    """The ``judge`` section: the network that scores generated faces, trained apart from every family."""

    SECTION: ClassVar[str] = "judge"
    kind: Literal["trained", "dlib"] = Field(description="trained: judge_resnet on the judge corpus; dlib: dlib's "
                                                         "ResNet face recognizer (real faces)")
    width: PositiveFloat = Field(description="channel multiplier of the ResNet (1.0 = ResNet-18's widths)")
    blocks: PositiveInt = Field(description="BasicBlocks per stage (2 = ResNet-18's depth)")
    embed_dim: int = Field(ge=2, description="embedding size")
    epochs: PositiveInt = Field(description="passes over the judge corpus's training identities")
    batch_size: int = Field(ge=2, description="images per step")
    margin: float = Field(ge=0, lt=1, description="CosFace's additive cosine margin")
    scale: PositiveFloat = Field(description="CosFace's logit scale")
    val_fraction: Fraction = Field(description="share of judge corpus identities held out to measure the judge")
    blur_max: NonNegativeFloat = Field(description="largest training blur sigma, pixels (half of each batch); "
                                                   "the held-out images are also measured blurred by it")


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="judge corpus directory (stage judge_corpus)")
    parser.add_argument("--face-corpus", required=True,
                        help="face corpus directory (stage face_corpus): its identities must not be the judge's")
    parser.add_argument("--out", required=True, help="output checkpoint (trained weights, or the dlib marker)")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--plots", required=True, help="training curves directory (dvclive)")


def body(args) -> str:
    start = time.perf_counter()
    metrics = build_judge(args.corpus, args.face_corpus, args.out, args.metrics, args.plots, args.section)
    return summary_line(metrics, elapsed(start)) + f" -> {args.out}"


main = stage_main("judge", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
