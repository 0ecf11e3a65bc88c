"""DVC stage ``scldm_autoencoder``: SCLDM's face autoencoder (diffusers ``AutoencoderKL``), trained on the face
corpus and the training clips' face crops; its header carries the latent scaling factor."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, NonNegativeFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.families.scldm.params import ScldmKeys


class Params(ScldmKeys):
    """The ``scldm_autoencoder`` section: the autoencoder's blocks and latent, the KL weight and the optimiser."""

    SECTION: ClassVar[str] = "scldm_autoencoder"
    widths: list[PositiveInt] = Field(min_length=1, max_length=6, description="channels per block; each block but "
                                                                             "the last halves the side")
    latent_channels: PositiveInt = Field(description="channels of the latent")
    latent_size: PositiveInt = Field(description="side of the latent: must be the crops' side / 2^(blocks-1)")
    layers_per_block: PositiveInt = Field(description="ResNet layers per block")
    kl_weight: NonNegativeFloat = Field(description="weight of the KL term (per face, summed over the latent)")


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="the face corpus (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.families.scldm.autoencoder import train_autoencoder
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    m = train_autoencoder(args.corpus, args.shards, args.out, args.metrics, args.plots, args.section)
    write_cost(args.cost, start, m["parameters"])
    return (f"scldm_autoencoder: {m['steps']} steps, {m['image_size']} px -> {'x'.join(map(str, m['latent_shape']))} "
            f"latents, loss {m['first_epoch_loss']:.3f} -> {m['final']['loss']:.3f}, test reconstruction L1 "
            f"{m['test']['reconstruction_l1']:.4f}, scaling factor {m['scaling_factor']:.3f} in {elapsed(start)} "
            f"-> {args.out}")


main = stage_main("scldm_autoencoder", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
