"""DVC stage ``sf2f_train``: SF2F's voice encoder and face decoder against its patch and identity discriminators."""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pydantic import field_validator

from pipeline.common.schema import Field, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.families.sf2f.params import Sf2fKeys


class Params(Sf2fKeys):
    """The ``sf2f_train`` section: SF2F's first stage (encoder + decoder + discriminators)."""

    SECTION: ClassVar[str] = "sf2f_train"
    identity: Literal["speaker", "video"] = Field(description="identity labels of the identity discriminator: the "
                                                              "labels' speaker ids, or video ids (AVSpeech)")
    image_size: PositiveInt = Field(description="face side the decoder draws: 4·2^k (SF2F 64 or 128)")
    encoder_channels: list[PositiveInt] = Field(min_length=1, max_length=8,
                                                description="Inception blocks' widths (SF2F 256, 384, 576, 864)")
    embed_dim: PositiveInt = Field(description="voice embedding width (SF2F 512)")
    decoder_width: PositiveInt = Field(description="decoder's first map channels, halved per block (SF2F 512)")
    discriminator_widths: list[PositiveInt] = Field(min_length=1, max_length=6,
                                                    description="discriminators' 4x4 convolutions (SF2F 64, 128, "
                                                                "256; + 512 at 128 px)")
    discriminator_hidden: PositiveInt = Field(description="identity discriminator's hidden width (SF2F 1024)")

    @field_validator("image_size")
    @classmethod
    def _reachable(cls, size: int) -> int:
        if size < 8 or size & (size - 1):
            raise ValueError(f"the decoder reaches only 4·2^k px (8, 16, 32, 64, 128, 256, ...), not {size}")
        return size

    @field_validator("encoder_channels")
    @classmethod
    def _quarters(cls, channels: list[int]) -> list[int]:
        odd = [c for c in channels if c % 4]
        if odd:
            raise ValueError(f"each Inception block has four equal branches, so its width must be a multiple of 4, "
                             f"not {', '.join(map(str, odd))}")
        return channels


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    parser.add_argument("--face-encoder", required=True, help="face encoder (the perceptual loss's network)")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.families.sf2f.train import train_sf2f
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    m = train_sf2f(args.shards, args.face_encoder, args.out, args.metrics, args.plots, args.section)
    write_cost(args.cost, start, m["parameters"])
    return (f"sf2f_train: {m['steps']} steps over {m['identities']} {m['identity_source']} identities, loss "
            f"{m['first_epoch_loss']:.3f} -> {m['final']['loss']:.3f} (L1 {m['final']['l1']:.3f}) in "
            f"{elapsed(start)} -> {args.out}")


main = stage_main("sf2f_train", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
