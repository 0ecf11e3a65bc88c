"""DVC stage ``attribute_probe``: a small CNN that reads face attributes, trained on the face corpus.

    python -m stages.attribute_probe --corpus data/face_corpus --out data/models/attribute_probe.pt \
        --metrics metrics/attribute_probe.json
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.device import resolve_device
from pipeline.common.io import write_json
from pipeline.common.params import require
from pipeline.common.schema import Device, Field, Fraction, NonNegativeFloat, PositiveFloat, PositiveInt, Section, Seed
from pipeline.common.stage import elapsed, stage_main
from pipeline.faces.probe import ARCH, train_probe
from pipeline.training.checkpoints import save_checkpoint


class Params(Section):
    """The ``attribute_probe`` section: the instrument that reads attributes from a face."""

    SECTION: ClassVar[str] = "attribute_probe"
    width: PositiveFloat = Field(description="channel multiplier")
    epochs: PositiveInt = Field(description="passes over the face corpus")
    batch_size: PositiveInt = Field(description="images per step")
    lr: PositiveFloat = Field(description="Adam's learning rate")
    val_fraction: Fraction = Field(description="share of corpus identities held out")
    blur_max: NonNegativeFloat = Field(description="largest training blur sigma, pixels")
    seed: Seed
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


KEYS = ("width", "epochs", "batch_size", "lr", "val_fraction", "seed", "device")


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", required=True, help="face corpus directory (stage face_corpus)")
    parser.add_argument("--out", required=True, help="output checkpoint")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")


def body(args) -> str:
    start = time.perf_counter()
    params = args.section
    require(params, *KEYS, section="attribute_probe")
    model, config, metrics = train_probe(args.corpus, params, resolve_device(str(params["device"])))
    save_checkpoint(args.out, model.cpu(), ARCH, config, {"val": metrics["val"]})
    write_json(args.metrics, metrics)
    accs = ", ".join(f"{name} {v['accuracy']:.2f} (chance {v['chance']:.2f})"
                     for name, v in metrics["val"].items() if v.get("accuracy") is not None)
    return (f"attribute_probe: {metrics['n_train_images']} training crops; on {metrics['n_val_identities']} "
            f"unseen identities: {accs}; {elapsed(start)} -> {args.out}")


main = stage_main("attribute_probe", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
