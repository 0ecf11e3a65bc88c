"""The model families by name: what each one's trained generator is made of and how to load it.

Every family ends in a :class:`pipeline.faces.generator.FaceGenerator` (a 6-s spectrogram in, a face out). This
table is the one place that knows them all; ``compare``, ``pipeline.serve.predict`` and the page pick a family
from it. It lives in the evaluation layer, the lowest one that sees both AR-SPM and ``pipeline.families``, so
neither imports the other. A family's ``inputs`` are its DVC outputs, relative to the project's root: what
``load_generator`` reads unless told other paths.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.faces.generator import FaceGenerator, GeneratorError


@dataclass(frozen=True)
class Family:
    """One family: its name, a title for reports, the files its generator loads (name → default path; None: no
    default, given only when wanted, like the voice gender classifier of AR-SPM's gender variants), which of them
    may be left out, and the loader, called with those paths (as keyword arguments) and a device."""

    name: str
    title: str
    inputs: dict[str, str | None]
    optional: tuple[str, ...]
    load: Callable[..., FaceGenerator]


def _load_arspm(encoder: Path, decoder: Path, priors: Path | None = None, gender_model: Path | None = None,
                device: torch.device | str = "cpu") -> FaceGenerator:
    from pipeline.arspm.generator import ArspmGenerator

    return ArspmGenerator(encoder, decoder, priors, gender_model, device)


def _load_sf2f(checkpoint: Path, device: torch.device | str = "cpu") -> FaceGenerator:
    from pipeline.families.sf2f.generator import Sf2fGenerator

    return Sf2fGenerator(checkpoint, device)


def _load_selfsup(checkpoint: Path, device: torch.device | str = "cpu") -> FaceGenerator:
    from pipeline.families.selfsup.generator import SelfsupGenerator

    return SelfsupGenerator(checkpoint, device)


def _load_scldm(checkpoint: Path, sampler: Path, device: torch.device | str = "cpu") -> FaceGenerator:
    from pipeline.families.scldm.generator import ScldmGenerator

    return ScldmGenerator(checkpoint, sampler, device)


FAMILIES: dict[str, Family] = {
    "arspm": Family("arspm", "AR-SPM (neutral_fc)",
                    {"encoder": "data/models/encoder-neutral_fc.pt", "decoder": "data/models/decoder.pt",
                     "priors": "data/priors/variant-neutral_fc.npz", "gender_model": None},
                    ("gender_model",), _load_arspm),
    "sf2f": Family("sf2f", "SF2F (encoder + fuser + GAN decoder)", {"checkpoint": "data/models/sf2f_fuser.pt"}, (),
                   _load_sf2f),
    "selfsup": Family("selfsup", "Self-supervised GAN (contrastive encoders + projection-D GAN)",
                      {"checkpoint": "data/models/selfsup_gan.pt"}, (), _load_selfsup),
    "scldm": Family("scldm", "SCLDM (contrastive encoders + latent diffusion with a face prior)",
                    {"checkpoint": "data/models/scldm.pt", "sampler": "data/scldm_sample/sampler.json"}, (),
                    _load_scldm),
}


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name is refused in one sentence listing the families."""
    if name not in FAMILIES:
        raise GeneratorError(f"unknown model family {name!r}: the families are {', '.join(FAMILIES)}")
    return FAMILIES[name]


def load_generator(name: str, root: str | Path = ".", device: torch.device | str = "cpu",
                   **paths: str | Path | None) -> FaceGenerator:
    """Family ``name``'s generator from its files: ``paths`` override the defaults (``Family.inputs``, under
    ``root``); a missing file is refused in one sentence, except an optional one, which is then left out."""
    family = get_family(name)
    unknown = sorted(set(paths) - set(family.inputs))
    if unknown:
        raise GeneratorError(f"the {name} family takes {', '.join(family.inputs)}, not {', '.join(unknown)}")
    chosen: dict[str, Path | None] = {}
    for key, default in family.inputs.items():
        given = paths.get(key)
        if given is None and default is None:
            chosen[key] = None
            continue
        path = Path(given) if given is not None else Path(root) / default
        if not path.exists():
            if key in family.optional and given is None:
                chosen[key] = None
                continue
            raise GeneratorError(f"the {name} family needs its {key.replace('_', ' ')} {path}, which does not exist "
                                 f"(dvc repro?)")
        chosen[key] = path
    return family.load(device=device, **chosen)
