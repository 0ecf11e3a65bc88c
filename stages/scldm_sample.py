"""DVC stage ``scldm_sample``: SCLDM's sampler (DDIM steps, guidance scale, seed), its settings file for the
comparison and the page, several samples per test voice, and the milliseconds per face."""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import (
    Device,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Section,
    Seed,
)
from pipeline.common.stage import elapsed, stage_main


class Params(Section):
    """The ``scldm_sample`` section: how faces are drawn from the trained diffusion model."""

    SECTION: ClassVar[str] = "scldm_sample"
    ddim_steps: PositiveInt = Field(description="DDIM steps per face (at least 1)")
    guidance_scale: NonNegativeFloat = Field(description="classifier-free guidance: 0 unconditional, 1 conditional "
                                                         "alone, > 1 pushed along (conditional - unconditional)")
    temperature: PositiveFloat = Field(description="standard deviation of DDIM's starting noise (1 = the diffusion's "
                                                   "own; below 1: fewer, more typical faces per voice)")
    samples_per_voice: PositiveInt = Field(description="samples drawn of each voice in the stage's figure")
    voices: PositiveInt = Field(description="test voices in the stage's figure (the first in shard order)")
    seed: Seed
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="the scldm_train stage's diffusion model")
    parser.add_argument("--shards", required=True, help="shards (stage preprocess): the test split")
    for name in ("out", "metrics", "cost"):
        parser.add_argument(f"--{name}", required=True)


def body(args) -> str:
    from pipeline.common.io import write_json
    from pipeline.families.scldm.sample import run_sample

    start = time.perf_counter()
    result = run_sample(args.checkpoint, args.shards, args.out, args.section)
    m = result["metrics"]
    write_json(args.metrics, m)  # milliseconds go to the cost file: same seed, same metrics bytes
    write_json(args.cost, {"ms_per_face": result["ms_per_face"], "faces": result["faces"],
                           "ddim_steps": m["ddim_steps"], "sample_seconds": round(time.perf_counter() - start, 3)})

    def show(x):
        return "-" if x is None else f"{x:.3f}"

    return (f"scldm_sample: {result['faces']} faces of {len(m['voices'])} test voices, DDIM {m['ddim_steps']} steps, "
            f"guidance {m['guidance_scale']:g}: {result['ms_per_face']:.1f} ms per face, spread over noise "
            f"{show(m['noise_spread'])} and over voices {show(m['voice_spread'])} in {elapsed(start)} -> {args.out}")


main = stage_main("scldm_sample", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
