"""DVC stage ``scldm_train``: SCLDM's latent diffusion model, a diffusers U-Net over the autoencoder's latents
conditioned on the frozen contrastive speech embedding, trained on the latent minus the face prior's latent."""
from __future__ import annotations

import sys
import time
from typing import ClassVar, Literal

from pipeline.common.schema import Field, NonNegativeFloat, PositiveInt
from pipeline.common.stage import elapsed, stage_main
from pipeline.families.scldm.params import ScldmKeys


class Params(ScldmKeys):
    """The ``scldm_train`` section: the U-Net, the diffusion schedule, guidance dropout, the average, the prior."""

    SECTION: ClassVar[str] = "scldm_train"
    widths: list[PositiveInt] = Field(min_length=1, max_length=6, description="U-Net channels per level (each "
                                                                             "level but the last halves the side)")
    layers_per_block: PositiveInt = Field(description="ResNet layers per U-Net block")
    attention: bool = Field(description="self-attention in the U-Net's middle block")
    prediction_type: Literal["epsilon", "v_prediction"] = Field(description="what the U-Net predicts: the noise or "
                                                                            "the velocity")
    train_timesteps: PositiveInt = Field(description="DDPM timesteps (the betas: scaled linear 0.00085-0.012)")
    condition_dropout: float = Field(ge=0, lt=1, description="share of rows trained with the null (zero) condition "
                                                             "(classifier-free guidance)")
    condition_noise: NonNegativeFloat = Field(description="std of the noise added to each entry of the unit speech "
                                                          "embedding while training, then renormalised (0 = none)")
    ema_decay: float = Field(ge=0, lt=1, description="decay of the weights' moving average (the saved weights)")
    prior: bool = Field(description="learn the latent minus the face prior's latent (false: the ablation)")


def add_arguments(parser) -> None:
    parser.add_argument("--shards", required=True, help="shards (stage preprocess)")
    parser.add_argument("--contrastive", required=True, help="the contrastive stage's encoders")
    parser.add_argument("--autoencoder", required=True, help="the scldm_autoencoder stage's autoencoder")
    parser.add_argument("--priors", required=True, help="the priors stage's neutral-faces.json")
    for name in ("out", "metrics", "cost", "plots"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.families.scldm.train import train_diffusion
    from pipeline.training.loop import write_cost

    start = time.perf_counter()
    m = train_diffusion(args.shards, args.contrastive, args.autoencoder, args.priors, args.out, args.metrics,
                        args.plots, args.section)
    write_cost(args.cost, start, m["parameters"])
    prior = m["prior"]
    return (f"scldm_train: {m['steps']} steps ({m['prediction_type']}), loss {m['first_epoch_loss']:.3f} -> "
            f"{m['final']['loss']:.3f}, {'prior of ' + str(prior['faces']) + ' faces' if prior['used'] else 'no prior'}"
            f" (latent rms {prior['latent_rms']:.3f}, residual rms {prior['residual_rms']:.3f}) in {elapsed(start)} "
            f"-> {args.out}")


main = stage_main("scldm_train", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
