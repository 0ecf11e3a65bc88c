"""DVC stage ``train_selfsup_gan``: the self-supervised family's generator G(z, c), c the frozen contrastive speech
embedding, against a projection discriminator with spectral norm, reading no label."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, NonNegativeFloat, PositiveFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.families.contrastive.params import LabelFreeKeys


class Params(LabelFreeKeys):
    """The ``train_selfsup_gan`` section: the generator's and the discriminator's sizes, the loss weights and the
    optimiser (``lr`` the generator's)."""

    SECTION: ClassVar[str] = "train_selfsup_gan"
    noise_dim: PositiveInt = Field(description="width of the noise z")
    generator_width: PositiveInt = Field(description="generator's last-but-one channels x 8 = its 4x4 map's channels")
    discriminator_widths: list[PositiveInt] = Field(min_length=1, max_length=8,
                                                    description="discriminator's stride-2 4x4 convolutions")
    identity_weight: NonNegativeFloat = Field(description="1 - cos(F(G(z, c)), c), F the frozen contrastive face "
                                                          "encoder")
    reconstruction_weight: NonNegativeFloat = Field(description="L1 between G(z, c) and the clip's own face crop")
    condition_noise: NonNegativeFloat = Field(description="std of the noise added to each entry of the unit c "
                                                          "during training, then renormalised (0 = none)")
    augment: bool = Field(description="DiffAugment (colour, translation) on what the discriminator sees")
    discriminator_lr: PositiveFloat = Field(description="the discriminator's Adam learning rate")
    ema_decay: float = Field(ge=0, lt=1, description="decay of the moving average of G's weights that draws the "
                                                     "faces (0 = the trained G itself)")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    parser.add_argument("--contrastive", required=True, help="the contrastive stage's encoders")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.families.contrastive.train import warn_labels_ignored
    from pipeline.families.selfsup.train import train_gan
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    warn_labels_ignored("train_selfsup_gan", args.section)
    m = train_gan(args.shards, args.contrastive, args.out, args.metrics, args.plots, args.section)
    write_cost(args.cost, start, m["parameters"])
    gap = m["test"].get("gap")
    return (f"train_selfsup_gan: {m['steps']} steps at {m['image_size']} px, loss {m['first_epoch_loss']:.3f} -> "
            f"{m['final']['loss']:.3f} (L1 {m['final']['l1']:.3f}), test cosine gap own-other "
            f"{'-' if gap is None else f'{gap:.3f}'} in {elapsed(start)} -> {args.out}")


main = stage_main("train_selfsup_gan", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
