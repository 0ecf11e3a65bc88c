"""Tiny overfit checks: at small width, the decoder and the encoder each drive their loss down on 4 samples."""
from __future__ import annotations

import torch

from models.decoder import FaceDecoder
from models.encoder import SpeechEncoder
from models.losses import DecoderLoss, tri_item_loss
from models.vggface import VGGFace


def _adam(module: torch.nn.Module, lr: float = 1e-2) -> torch.optim.Optimizer:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-4)  # the paper's β1, ε


def test_decoder_overfits_four_faces():
    torch.manual_seed(0)
    vgg = VGGFace(width=0.0625, image_size=64, fc_dim=16, num_classes=4).eval().requires_grad_(False)
    # Smooth "faces" (MS-SSIM is meaningless on white noise): blurred random blobs.
    faces = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4), size=64, mode="bilinear", align_corners=False)
    with torch.no_grad():
        features = vgg.features(faces)
    decoder = FaceDecoder(feature_dim=16, fc1_dim=16, image_size=64, width=0.125)
    criterion = DecoderLoss(msssim_win_size=3)
    optimiser = _adam(decoder)
    losses = []
    for _ in range(40):
        recon = decoder(features)
        loss, _ = criterion(recon, faces, vgg.features(recon), features)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses  # measured: 0.76 -> 0.52 in 40 steps


def test_encoder_overfits_four_spectrograms():
    torch.manual_seed(0)
    dim = 16
    decoder = FaceDecoder(feature_dim=dim, fc1_dim=8, image_size=32, width=0.0625).eval().requires_grad_(False)
    vgg = VGGFace(width=0.0625, image_size=32, fc_dim=dim, num_classes=4).eval().requires_grad_(False)
    specs = torch.randn(4, 2, 257, 598)
    true_features = torch.randn(4, dim).relu()
    prior = true_features.mean(0)
    encoder = SpeechEncoder(feature_dim=dim, width=0.0625, fusion="fc")
    optimiser = _adam(encoder)
    losses = []
    for _ in range(30):
        loss, _ = tri_item_loss(true_features, encoder(specs, prior), decoder.fc1, vgg.classify)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
