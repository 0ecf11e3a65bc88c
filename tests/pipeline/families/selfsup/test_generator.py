"""The family frame's view of the self-supervised GAN: the tiny checkpoint the page and predict tests use loads
through the families' table, draws faces and embeds voices and faces in one space."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.evaluation.families import load_generator
from pipeline.testing.families import write_tiny_selfsup


def test_the_family_table_loads_a_selfsup_checkpoint(tmp_path: Path) -> None:
    path = write_tiny_selfsup(tmp_path / "data" / "models" / "selfsup_gan.pt", image_size=16)
    generator = load_generator("selfsup", root=tmp_path)
    assert generator.family == "selfsup" and generator.image_size == 16 and generator.noise_dim == 4
    specs = np.random.default_rng(0).standard_normal((2, 2, 257, 598)).astype(np.float32)
    assert generator.generate(specs).shape == (2, 16, 16, 3)
    speech, faces = generator.matching_embeddings(specs, np.zeros((2, 16, 16, 3), dtype=np.uint8))
    assert speech.shape == faces.shape == (2, 8)
    assert np.allclose(np.linalg.norm(speech, axis=1), 1, atol=1e-5)
    assert path.read_bytes() == write_tiny_selfsup(tmp_path / "again.pt", image_size=16).read_bytes()
