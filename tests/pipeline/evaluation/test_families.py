"""The families' table: every family by name, one sentence for an unknown one or a missing file, and a family's
generator loaded from its files draws faces of the one interface."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.evaluation.families import FAMILIES, get_family, load_generator
from pipeline.faces.generator import SPEC_SHAPE, GeneratorError


def test_an_unknown_family_lists_the_families() -> None:
    with pytest.raises(GeneratorError) as info:
        get_family("stylegan")
    assert str(info.value) == f"unknown model family 'stylegan': the families are {', '.join(FAMILIES)}"
    assert {"arspm", "sf2f", "selfsup", "scldm"} <= set(FAMILIES)


def test_missing_files_and_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match=r"the sf2f family needs its checkpoint .*sf2f_fuser.pt, which does not"):
        load_generator("sf2f", root=tmp_path)
    with pytest.raises(GeneratorError, match=r"the sf2f family takes checkpoint, not encoder"):
        load_generator("sf2f", encoder=tmp_path / "x.pt")


def test_arspm_through_the_table(tmp_path: Path) -> None:
    import models.decoder  # noqa: F401  (registers the architectures)
    import models.encoder  # noqa: F401
    from models import build_model
    from pipeline.testing.features import write_dummy_priors
    from pipeline.training.checkpoints import save_checkpoint

    torch.manual_seed(0)
    enc = {"feature_dim": 16, "width": 0.0625, "fusion": "fc", "use_cbam": True}
    dec = {"feature_dim": 16, "fc1_dim": 8, "image_size": 64, "width": 0.0625}
    save_checkpoint(tmp_path / "enc.pt", build_model("speech_encoder", enc).eval(), "speech_encoder", enc,
                    {"variant": "neutral_fc"})
    save_checkpoint(tmp_path / "dec.pt", build_model("face_decoder", dec).eval(), "face_decoder", dec)
    priors = write_dummy_priors(tmp_path / "priors", dim=16)
    generator = load_generator("arspm", encoder=tmp_path / "enc.pt", decoder=tmp_path / "dec.pt", priors=priors)
    faces = generator.generate(np.zeros((2, *SPEC_SHAPE), np.float32))
    assert faces.shape == (2, 64, 64, 3) and generator.image_size == 64
    assert generator.parameter_count() > 0
    # an AR-SPM checkpoint is not SF2F's
    with pytest.raises(GeneratorError, match=r"enc.pt is not a model family's checkpoint \(arch 'speech_encoder'\)"):
        load_generator("sf2f", checkpoint=tmp_path / "enc.pt")
