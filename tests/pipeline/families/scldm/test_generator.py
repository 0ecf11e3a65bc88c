"""SCLDM's checkpoint and sampler through the family frame: it draws faces whose noise is its seed, with the same
bytes twice; a checkpoint whose autoencoder does not make its latent shape, and bad sampler settings, are refused in
one sentence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.evaluation.families import load_generator
from pipeline.faces.generator import GeneratorError
from pipeline.testing.families import write_tiny_scldm
from pipeline.training.checkpoints import _load_raw


def _specs(n: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 2, 257, 598)).astype(np.float32)


def test_the_family_draws_faces_from_its_checkpoint_and_sampler(tmp_path: Path) -> None:
    path = write_tiny_scldm(tmp_path / "scldm.pt", image_size=16, sampler=tmp_path / "sampler.json")
    generator = load_generator("scldm", checkpoint=path, sampler=tmp_path / "sampler.json")
    assert generator.noise_dim == 2 * 8 * 8 and generator.image_size == 16
    assert "DDIM 3 steps, guidance 2" in generator.description
    faces = generator.generate(_specs(3), seed=1)
    assert faces.shape == (3, 16, 16, 3) and faces.dtype == np.uint8
    assert np.array_equal(faces, generator.generate(_specs(3), seed=1))  # the same seed, the same bytes
    # a voice drawn alone with seed s gets row 0 of seed s's noise: the seed is the noise
    one = generator.generate(_specs(1), seed=4)
    assert np.array_equal(one, generator.generate(_specs(1), batch_size=1, seed=4))
    assert not np.array_equal(one, generator.generate(_specs(1), seed=5))
    assert path.read_bytes() == write_tiny_scldm(tmp_path / "again.pt", image_size=16).read_bytes()


def test_a_checkpoint_whose_autoencoder_does_not_make_its_latents_is_refused(tmp_path: Path) -> None:
    path = write_tiny_scldm(tmp_path / "scldm.pt", image_size=16)
    raw = _load_raw(path)
    raw["header"]["config"]["autoencoder"]["widths"] = [4, 4, 4]  # now 16 px -> 4x4, not the 8x8 it was trained on
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    with pytest.raises(GeneratorError, match=r"bad.pt holds a diffusion model of 2x8x8 latents, but its autoencoder "
                                             r"makes 2x4x4 latents of 16-px faces \(retrain scldm_train"):
        load_generator("scldm", checkpoint=bad, sampler=_sampler(tmp_path, 3, 1.0))


def _sampler(tmp_path: Path, steps: int, scale: float) -> Path:
    path = tmp_path / "sampler.json"
    path.write_text(json.dumps({"ddim_steps": steps, "guidance_scale": scale, "temperature": 1.0, "seed": 0}))
    return path


@pytest.mark.parametrize(("steps", "scale", "message"), [
    (0, 1.0, r"ask for 0 DDIM steps; at least 1 is needed"),
    (3, -1.0, r"have guidance scale -1.0; it must be 0 or more"),
])
def test_bad_sampler_settings_are_refused(tmp_path: Path, steps: int, scale: float, message: str) -> None:
    path = write_tiny_scldm(tmp_path / "scldm.pt", image_size=16)
    with pytest.raises(GeneratorError, match=message):
        load_generator("scldm", checkpoint=path, sampler=_sampler(tmp_path, steps, scale))


def test_another_family_is_refused(tmp_path: Path) -> None:
    from pipeline.testing.families import write_tiny_selfsup

    other = write_tiny_selfsup(tmp_path / "selfsup.pt", image_size=16)
    with pytest.raises(GeneratorError, match=r"selfsup.pt is a selfsup checkpoint, but the scldm family was asked"):
        load_generator("scldm", checkpoint=other, sampler=_sampler(tmp_path, 3, 1.0))
