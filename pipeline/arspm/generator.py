"""AR-SPM as a face generator (``pipeline.faces.generator``): the speech encoder of one Table 4 variant, its prior,
and the face decoder FD. The comparison draws AR-SPM's faces with ``neutral_fc``; ``pipeline.serve.predict`` and
the page take any variant.

The encoder's variant (in its checkpoint) says which prior it needs: none, neutral, male/female, or, for
``gender``/``gender_fc``, the prior of the gender that the voice gender classifier predicts.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from models.decoder import ARCH as ARCH_DECODER
from models.encoder import ARCH as ARCH_ENCODER
from models.gender import ARCH as ARCH_GENDER
from pipeline.arspm.variant_inputs import load_variant_priors
from pipeline.arspm.variants import get_variant, priors_needed
from pipeline.faces.generator import FaceGenerator, GeneratorError
from pipeline.training.frozen import load_frozen

FAMILY = "arspm"


def _feature_dim(header: dict, path: Path) -> int:
    try:
        return int(header["config"]["feature_dim"])
    except (KeyError, TypeError, ValueError):
        raise GeneratorError(f"checkpoint {path} has no feature_dim in its config") from None


def _existing(path: str | Path, what: str, directory_ok: bool = False) -> Path:
    path = Path(path)
    if not path.exists():
        raise GeneratorError(f"{what} {path} not found")
    if path.is_dir() and not directory_ok:
        raise GeneratorError(f"{what} {path} is a directory, not a file")
    return path


class ArspmGenerator(FaceGenerator):
    """The checkpoints one AR-SPM face needs, loaded once: the speech encoder, FD, the priors its variant takes
    and the voice gender classifier (needed by ``gender``/``gender_fc``; when given it also reports ``p_female``)."""

    family = FAMILY

    def __init__(self, encoder_path: str | Path, decoder_path: str | Path, priors_path: str | Path | None = None,
                 gender_model: str | Path | None = None, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.encoder_path = _existing(encoder_path, "encoder checkpoint")
        self.encoder, header = load_frozen(self.encoder_path, ARCH_ENCODER, self.device)
        decoder_path = _existing(decoder_path, "decoder checkpoint")
        self.decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, self.device)
        self.dim = _feature_dim(header, self.encoder_path)
        if _feature_dim(decoder_header, decoder_path) != self.dim:
            raise GeneratorError(f"decoder takes {decoder_header['config']['feature_dim']}-d features, the encoder "
                                 f"makes {self.dim}-d ones (checkpoints from different runs?)")
        self.variant = get_variant(str(header.get("variant", "non_prior")))
        self.image_size = int(getattr(self.decoder, "image_size", decoder_header["config"].get("image_size", 224)))
        self.description = f"AR-SPM {self.variant.name} (speech encoder + face decoder)"
        self.priors = None
        if priors_path is not None:
            priors_path = _existing(priors_path, "priors", directory_ok=True)
        if self.variant.prior is not None:
            if priors_path is None:
                raise GeneratorError(f"the {self.variant.name} encoder needs --priors (data/priors)")
            self.priors = load_variant_priors(priors_path, self.dim, priors_needed(self.variant))
            for name, prior in self.priors.items():
                if not np.isfinite(prior).all():
                    raise GeneratorError(f"the {name} prior in {priors_path} is not finite ({int(np.isnan(prior).sum())} "
                                         f"NaN, {int(np.isinf(prior).sum())} infinite of {prior.size} values): rerun "
                                         f"the priors stage")
        if self.variant.prior == "gender" and gender_model is None:
            raise GeneratorError(f"the {self.variant.name} encoder needs --gender-model (data/gender/model.pt)")
        self.gender = (load_frozen(_existing(gender_model, "voice gender model"), ARCH_GENDER, self.device)[0]
                       if gender_model is not None else None)
        self.modules = (self.encoder, self.decoder)

    @torch.no_grad()
    def features(self, specs: torch.Tensor) -> tuple[torch.Tensor, list[str | None], list[float | None]]:
        """``(speech features (B, D), prior used per sample, p_female per sample)`` of a batch on the device."""
        p_female: list[float | None] = [None] * specs.shape[0]
        if self.gender is not None:
            probs = torch.softmax(self.gender(specs).float(), dim=1)[:, 1]
            if not bool(torch.isfinite(probs).all()):
                raise GeneratorError("the voice gender model gives no finite probability for this audio (NaN or "
                                     "infinite weights?)")
            p_female = [float(p) for p in probs]
        chosen: list[str | None] = [self.variant.prior] * specs.shape[0]
        if self.variant.prior == "gender":
            chosen = ["female" if p >= 0.5 else "male" for p in p_female]
        prior = (torch.stack([torch.from_numpy(self.priors[c]) for c in chosen]).to(self.device)
                 if self.variant.prior is not None else None)
        feature = self.encoder(specs, prior)
        if not bool(torch.isfinite(feature).all()):
            raise GeneratorError(f"the speech encoder {self.encoder_path.name} gives a non-finite feature for this "
                                 f"audio (NaN or infinite weights?)")
        if p_female[0] is not None and not all(math.isfinite(p) for p in p_female):
            raise GeneratorError("the voice gender model gives no finite probability for this audio")
        return feature, chosen, p_female

    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        feature, _, _ = self.features(specs)
        return self.decoder(feature)
