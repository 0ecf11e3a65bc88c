"""The contrastive pair's modules: shapes, unit embeddings, time tokens, and InfoNCE against a hand computation."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline.families.contrastive.modules import (
    FaceEncoder,
    InfoNCE,
    SpeechEncoder,
    spectral_magnitude,
)


def test_the_speech_encoder_gives_a_unit_pooled_embedding_and_one_token_per_8_frames() -> None:
    torch.manual_seed(0)
    encoder = SpeechEncoder((8, 16, 16), embed_dim=12).eval()
    out = encoder(torch.randn(3, 2, 257, 598))
    assert out.pooled.shape == (3, 12) and out.tokens.shape == (3, 75, 12)  # ceil(598 / 8) = 75 tokens of 80 ms
    assert encoder.frames_per_token == 8
    assert torch.allclose(out.pooled.norm(dim=1), torch.ones(3), atol=1e-5)
    assert encoder(torch.randn(2, 2, 257, 100)).tokens.shape == (2, 13, 12)  # any length
    with pytest.raises(ValueError, match=r"expects \(B, 2, 257, T\)"):
        encoder(torch.randn(2, 257, 598))


def test_the_speech_encoder_reads_the_magnitude_not_the_phase() -> None:
    """Rotating every bin's phase leaves the compressed magnitude, and so the embedding, unchanged."""
    torch.manual_seed(0)
    encoder = SpeechEncoder((8, 8), embed_dim=4).eval()
    specs = torch.randn(2, 2, 257, 50)
    angle = torch.rand(1, 257, 50) * 2 * math.pi
    rotated = torch.stack([specs[:, 0] * angle.cos() - specs[:, 1] * angle.sin(),
                           specs[:, 0] * angle.sin() + specs[:, 1] * angle.cos()], dim=1)
    assert torch.allclose(spectral_magnitude(rotated), spectral_magnitude(specs), atol=1e-5)
    assert torch.allclose(encoder(rotated).pooled, encoder(specs).pooled, atol=1e-5)


def test_the_face_encoder_gives_unit_embeddings_at_any_size_its_convolutions_reach() -> None:
    torch.manual_seed(0)
    encoder = FaceEncoder(64, (8, 16, 16, 16), embed_dim=12).eval()
    for size in (64, 32):
        out = encoder(torch.rand(2, 3, size, size))
        assert out.shape == (2, 12) and torch.allclose(out.norm(dim=1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="needs faces of at least 16 px, not 8"):
        FaceEncoder(8, (8, 8, 8, 8))


def _hand_info_nce(speech: list[list[float]], faces: list[list[float]], scale: float,
                   masked: set[tuple[int, int]] = frozenset()) -> float:
    """Symmetric InfoNCE written out: for each row (voice) and each column (face), −log softmax of the diagonal."""
    n = len(speech)
    logit = [[scale * sum(a * b for a, b in zip(speech[i], faces[j])) for j in range(n)] for i in range(n)]

    def term(i: int, row: list[float], skip: set[int]) -> float:
        return -(row[i] - math.log(sum(math.exp(v) for j, v in enumerate(row) if j not in skip)))

    rows = [term(i, logit[i], {j for j in range(n) if (i, j) in masked}) for i in range(n)]
    cols = [term(j, [logit[i][j] for i in range(n)], {i for i in range(n) if (i, j) in masked}) for j in range(n)]
    return (sum(rows) / n + sum(cols) / n) / 2


def test_info_nce_equals_the_hand_computation_and_is_symmetric() -> None:
    speech = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
    faces = [[0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]]
    loss_fn = InfoNCE(temperature=0.5)
    loss, parts = loss_fn(torch.tensor(speech), torch.tensor(faces))
    loss = loss.detach()
    assert float(loss) == pytest.approx(_hand_info_nce(speech, faces, 2.0), abs=1e-6)
    assert parts["temperature"] == pytest.approx(0.5)
    swapped, _ = loss_fn(torch.tensor(faces), torch.tensor(speech))  # voices and faces trade places: same loss
    assert float(swapped) == pytest.approx(float(loss), abs=1e-6)
    assert parts["voice_to_face"] != pytest.approx(parts["face_to_voice"])  # the two directions differ here


def test_clips_of_one_video_are_not_each_others_negatives() -> None:
    speech = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
    faces = [[0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]]
    same = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])  # clips 0 and 1: one video
    loss, _ = InfoNCE(temperature=0.5)(torch.tensor(speech), torch.tensor(faces), same)
    assert float(loss) == pytest.approx(_hand_info_nce(speech, faces, 2.0, {(0, 1), (1, 0)}), abs=1e-6)


def test_the_temperature_is_learnt_and_capped() -> None:
    loss_fn = InfoNCE()
    assert float(1 / loss_fn.scale) == pytest.approx(0.07)
    speech = torch.nn.functional.normalize(torch.randn(4, 3), dim=1)
    loss, _ = loss_fn(speech, torch.nn.functional.normalize(torch.randn(4, 3), dim=1))
    loss.backward()
    assert loss_fn.log_scale.grad is not None and float(loss_fn.log_scale.grad) != 0.0
    with torch.no_grad():
        loss_fn.log_scale.fill_(10.0)
    assert float(loss_fn.scale) == pytest.approx(100.0)  # CLIP's cap
    with pytest.raises(ValueError, match="B ≥ 2"):
        loss_fn(speech[:1], speech[:1])
