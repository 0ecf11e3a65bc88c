"""DVC stage ``judge_corpus``: still face crops of identities only the judge trains on, apart from the face corpus.

    python -m stages.judge_corpus --out data/judge_corpus

The same corpus as ``face_corpus`` (same keys, same drawing and cropping), at generator offset ``JUDGE_OFFSET``:
identity ``i`` is ``make_speaker(seed, 2,000,000 + i)``, so none is a face-corpus identity (``1,000,000 + i``) or
a speech-sample speaker (``0 .. n``). The offset and every identity's generator index are recorded in meta.json and
identities.json (``pipeline.data.corpus_index``). Its image geometry (frame_size, image_size, margin, center_box)
must equal ``face_corpus``'s; the judge stage checks it from the two corpora's meta.json.
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, NonNegativeFloat, PositiveInt, Section, Seed
from pipeline.common.stage import elapsed, stage_main
from pipeline.data.corpus_index import BAND, JUDGE_OFFSET
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.data.sample.face import drawing_workers


class Params(Section):
    """The ``judge_corpus`` section: still faces of the identities the judge alone trains on."""

    SECTION: ClassVar[str] = "judge_corpus"
    seed: Seed
    n_identities: int = Field(ge=2, lt=BAND, description="distinct identities (fewer than 1,000,000: more would "
                                                         "overlap the next band of generator indices)")
    images_per_identity: PositiveInt = Field(description="images of each identity")
    frame_size: int = Field(ge=64, description="frame the face is drawn in, pixels (= face_corpus.frame_size)")
    image_size: int = Field(ge=8, description="crop side, pixels (= face_corpus.image_size)")
    margin: NonNegativeFloat = Field(description="context around the face box, fraction of its side "
                                                 "(= face_corpus.margin)")
    center_box: float = Field(gt=0, le=1, description="face box side as a fraction of the frame height "
                                                      "(= face_corpus.center_box)")
    shard_size: PositiveInt = Field(description="images per tar shard")


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (train-NNNNNN.tar shards, identities.json)")


def body(args) -> str:
    started = time.perf_counter()
    cfg = CorpusConfig.from_params(args.section, section="judge_corpus")
    counts = generate_face_corpus(args.out, cfg, workers=drawing_workers(), offset=JUDGE_OFFSET,
                                  section="judge_corpus")
    return (f"judge_corpus: {counts['identities']} identities (generator indices {JUDGE_OFFSET:,}.."
            f"{JUDGE_OFFSET + counts['identities'] - 1:,}) x {cfg.images_per_identity} images = {counts['images']} "
            f"face crops of {cfg.image_size}px in {counts['shards']} shard(s), {elapsed(started)} -> {args.out}")


main = stage_main("judge_corpus", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
