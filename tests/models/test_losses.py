"""Decoder loss and tri-item loss against hand computations; gradients reach only the trainable module."""
from __future__ import annotations

import math

import pytest
import torch

from models.decoder import FaceDecoder
from models.encoder import SpeechEncoder
from models.losses import DecoderLoss, gaussian_window, tri_item_loss
from models.vggface import VGGFace


def test_decoder_loss_identical_images_is_zero():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    feature = torch.randn(2, 10)
    loss, parts = DecoderLoss(msssim_win_size=3)(images, images.clone(), feature, feature.clone())
    assert abs(loss.item()) < 1e-5
    assert parts["msssim"] == pytest.approx(1.0, abs=1e-5) and parts["l1"] == 0.0
    assert parts["cos"] == pytest.approx(0.0, abs=1e-6)


def test_gaussian_weighted_l1_uniform_error_is_the_error():
    torch.manual_seed(0)
    target = torch.rand(1, 3, 64, 64) * 0.5
    _, parts = DecoderLoss(msssim_win_size=3)(target + 0.25, target)
    assert parts["l1"] == pytest.approx(0.25, abs=1e-6)


def test_gaussian_weighted_l1_hand_computed_weights():
    # A 3x3 image and a 3x3 window: the single valid output is sum(g g^T * |x - y|).
    win = gaussian_window(3, 1.5)
    g2 = torch.outer(win, win)
    err = torch.arange(9, dtype=torch.float32).view(3, 3) / 10
    from models.losses import gaussian_weighted_l1
    got = gaussian_weighted_l1(err.view(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), win)
    assert got.item() == pytest.approx((g2 * err).sum().item(), rel=1e-6)
    e = math.exp(-1 / (2 * 1.5 ** 2))
    assert win.tolist() == pytest.approx([e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)])


def test_decoder_loss_combines_parts_with_alpha_and_cos_weight():
    torch.manual_seed(0)
    recon, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    recon_feature = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    target_feature = torch.tensor([[0.0, 1.0], [2.0, 2.0]])  # cos 0 and 1 -> mean(1 - cos) = 0.5
    loss, parts = DecoderLoss(alpha=0.84, msssim_win_size=3, cos_weight=2.0)(recon, target, recon_feature,
                                                                              target_feature)
    assert parts["cos"] == pytest.approx(0.5)
    expected = 0.84 * (1 - parts["msssim"]) + 0.16 * parts["l1"] + 2.0 * 0.5
    assert loss.item() == pytest.approx(expected, rel=1e-5) and parts["total"] == pytest.approx(expected, rel=1e-5)


def test_decoder_loss_refuses_images_too_small_for_msssim():
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="at least 161 px"):
        DecoderLoss()(images, images)  # the paper's window 11 needs > 160 px
    _, parts = DecoderLoss(alpha=0.0)(images, images)  # no MS-SSIM term: any size, no msssim part
    assert "msssim" not in parts
    with pytest.raises(ValueError, match="both recon_feature and target_feature"):
        DecoderLoss(msssim_win_size=3)(images, images, recon_feature=torch.ones(1, 4))


def test_decoder_loss_grad_reaches_decoder_through_frozen_vggface():
    torch.manual_seed(0)
    decoder = FaceDecoder(feature_dim=16, fc1_dim=8, image_size=64, width=0.0625)
    vgg = VGGFace(width=0.0625, image_size=64, fc_dim=16, num_classes=3).eval().requires_grad_(False)
    target = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        target_feature = vgg.features(target)
    recon = decoder(target_feature)
    loss, _ = DecoderLoss(alpha=0.0, msssim_win_size=3, cos_weight=1.0)(recon, target, vgg.features(recon),
                                                                         target_feature)
    loss.backward()
    assert decoder.fc1.weight.grad is not None and decoder.fc1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_tri_item_identical_features_is_zero():
    torch.manual_seed(0)
    features = torch.randn(4, 6)
    fc1 = torch.nn.Linear(6, 3)
    fc8 = torch.nn.Linear(6, 5)
    loss, parts = tri_item_loss(features, features.clone(), fc1, fc8)
    assert abs(loss.item()) < 1e-6 and parts["l1"] == 0.0


def test_tri_item_known_vectors():
    # F = [1, 0], S = [0, 2]; fc1 and fc8 are identities.
    # l2 = |[1,0] - [0,1]|^2 = 2; l1 = |1-0| + |0-2| = 3; cos = 1 - 0 = 1 -> 1*2 + 0.04*3 + 1.2*1 = 3.32
    identity = lambda x: x  # noqa: E731
    loss, parts = tri_item_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]), identity, identity)
    assert parts == pytest.approx({"l2": 2.0, "l1": 3.0, "cos": 1.0, "total": 3.32})
    assert loss.item() == pytest.approx(3.32)


def test_tri_item_normalises_per_sample_and_averages_l1_norms():
    identity = lambda x: x  # noqa: E731
    true = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    speech = torch.tensor([[2.0, 0.0], [0.0, 0.5]])  # same directions, very different scales per sample
    _, parts = tri_item_loss(true, speech, identity, identity, lambdas=(1.0, 1.0, 1.0))
    assert parts["l2"] == pytest.approx(0.0, abs=1e-7) and parts["cos"] == pytest.approx(0.0, abs=1e-7)
    assert parts["l1"] == pytest.approx((1.0 + 9.5) / 2)  # mean over the batch of per-sample L1 norms


def test_tri_item_grad_reaches_only_the_encoder():
    torch.manual_seed(0)
    encoder = SpeechEncoder(feature_dim=16, width=0.0625, fusion="sum")
    decoder = FaceDecoder(feature_dim=16, fc1_dim=8, image_size=32, width=0.0625).requires_grad_(False)
    vgg = VGGFace(width=0.0625, image_size=32, fc_dim=16, num_classes=5, fc7_relu=False).eval()
    vgg.requires_grad_(False)
    speech = encoder(torch.randn(2, 2, 257, 598), torch.randn(16))
    loss, _ = tri_item_loss(torch.randn(2, 16), speech, decoder.fc1, vgg.classify)
    loss.backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)
    assert encoder.fc2.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in decoder.parameters()) and all(p.grad is None for p in vgg.parameters())


def test_decoder_loss_image_terms_stay_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    recon, target = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    criterion = DecoderLoss(msssim_win_size=3)
    reference, _ = criterion(recon, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = criterion(recon.bfloat16(), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), abs=5e-3)  # only the bf16 rounding of recon differs
