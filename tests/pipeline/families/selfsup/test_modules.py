"""The self-supervised GAN's modules: generator sizes and range, the projection discriminator's term and its
spectral norm, and the losses against hand values."""
from __future__ import annotations

import pytest
import torch

from pipeline.families.selfsup.modules import (
    Generator,
    ProjectionDiscriminator,
    hinge_discriminator_loss,
    hinge_generator_loss,
    identity_loss,
    reachable_size,
)


def test_the_generator_draws_faces_in_0_1_at_4_times_a_power_of_2() -> None:
    torch.manual_seed(0)
    for size in (8, 32, 64):
        faces = Generator(noise_dim=5, cond_dim=7, image_size=size, width=4)(torch.randn(3, 5), torch.randn(3, 7))
        assert faces.shape == (3, 3, size, size) and 0 <= float(faces.min()) and float(faces.max()) <= 1
    with pytest.raises(ValueError, match="4·2\\^k-px faces .* not 48"):
        Generator(5, 7, 48)
    with pytest.raises(ValueError, match=r"expects z \(B, 5\) and c \(B, 7\)"):
        Generator(5, 7, 8, 4)(torch.randn(3, 5), torch.randn(2, 7))
    assert [reachable_size(s) for s in (64, 100, 128, 224, 8)] == [64, 64, 128, 128, 8]


def test_the_projection_term_is_the_inner_product_of_the_projected_condition_and_the_features() -> None:
    """D(x, c) = ψ(φ(x)) + ⟨V √d·c, φ(x)⟩: the part that depends on c is linear in c and equals ⟨V √d·c, φ(x)⟩."""
    torch.manual_seed(0)
    d = ProjectionDiscriminator(cond_dim=6, image_size=16, widths=(4, 8)).eval()
    x, c = torch.rand(2, 3, 16, 16), torch.randn(2, 6)
    phi = d.features(x * 2 - 1).sum(dim=(2, 3))
    unconditional = d(x, torch.zeros(2, 6))
    assert torch.allclose(unconditional, d.real_fake(phi).squeeze(1), atol=1e-5)
    assert torch.allclose(d(x, c) - unconditional, (d.projection(c * 6 ** 0.5) * phi).sum(dim=1), atol=1e-4)
    assert torch.allclose(d(x, 2 * c) - unconditional, 2 * (d(x, c) - unconditional), atol=1e-4)


def test_every_discriminator_weight_is_spectrally_normalised() -> None:
    torch.manual_seed(0)
    d = ProjectionDiscriminator(cond_dim=6, image_size=16, widths=(4, 8))
    for _ in range(30):  # power iterations run in training mode
        d(torch.rand(2, 3, 16, 16), torch.randn(2, 6))
    layers = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(layers) == 4
    for layer in layers:
        assert torch.nn.utils.parametrize.is_parametrized(layer, "weight")
        sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05)


def test_the_losses_against_hand_values() -> None:
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-2.0, 0.0, 1.5])
    # relu(1 - real) = [0, 0.5, 2]; relu(1 + fake) = [0, 1, 2.5]
    assert float(hinge_discriminator_loss(real, fake)) == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert float(hinge_generator_loss(fake)) == pytest.approx(0.5 / 3)  # −mean(D(fake)), mean −0.5 / 3
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert float(identity_loss(c, c)) == pytest.approx(0.0, abs=1e-6)
    assert float(identity_loss(torch.tensor([[0.0, 3.0], [-1.0, 0.0]]), c)) == pytest.approx(1.0)  # cos 0, 0
