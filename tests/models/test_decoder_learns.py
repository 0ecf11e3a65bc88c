"""Regression guard for issue "FD draws one average face for everyone": fitted briefly with the demo's own
train_decoder settings (params.yaml) on a few dozen generated faces, the face decoder must reconstruct them
clearly better than their mean face, and its outputs must differ from face to face. A decoder that ignores its
input scores an L1 ratio near 1 and a diversity near 0, and fails."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from models.decoder import FaceDecoder
from models.losses import DecoderLoss
from pipeline.data.sample.corpus import CorpusConfig, render_image
from pipeline.data.sample.identity import make_speaker
from pipeline.testing.project import REPO_ROOT

N_FACES = 40
STEPS = 240


def _faces() -> torch.Tensor:
    cfg = CorpusConfig(seed=7, frame_size=160, image_size=64)
    crops = [render_image(cfg, make_speaker(cfg.seed, 5000 + i), 0) for i in range(N_FACES)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255.0)


@pytest.mark.slow
def test_decoder_with_demo_settings_reconstructs_faces_better_than_their_mean() -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())["train_decoder"]
    torch.manual_seed(0)
    faces = _faces()
    # A stand-in face feature that carries the face: a fixed random projection of the 8x8 thumbnail, after a
    # ReLU like fc7 (256-d, as the demo's face encoder).
    thumbs = torch.nn.functional.adaptive_avg_pool2d(faces, 8).flatten(1)
    projection = torch.randn(thumbs.shape[1], 256, generator=torch.Generator().manual_seed(1)) / 8.0
    features = ((thumbs - thumbs.mean(0)) @ projection).relu() * 10.0
    decoder = FaceDecoder(feature_dim=256, fc1_dim=int(params["fc1_dim"]), image_size=64,
                          width=float(params["width"]), first_map=int(params["first_map"]) or None)
    # No face encoder here, so no cosine term: the image loss with the demo's alpha and window.
    criterion = DecoderLoss(alpha=float(params["alpha"]), msssim_win_size=int(params["msssim_win_size"]),
                            cos_weight=0.0)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=float(params["lr"]),
                                 betas=(float(params["beta1"]), 0.999), eps=float(params["eps"]))
    generator = torch.Generator().manual_seed(2)
    batch = int(params["batch_size"])
    for _ in range(STEPS):
        idx = torch.randint(0, N_FACES, (batch,), generator=generator)
        loss, _ = criterion(decoder(features[idx]), faces[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    from pipeline.training.loop import recalibrate_batchnorm

    recalibrate_batchnorm(decoder, [features[i:i + batch] for i in range(0, N_FACES, batch)], decoder)
    with torch.no_grad():
        recon = decoder(features)
    l1_ratio = float((recon - faces).abs().mean() / (faces.mean(0, keepdim=True) - faces).abs().mean())
    diversity = float(recon.std(0).mean() / faces.std(0).mean())
    assert l1_ratio < 0.75 and diversity > 0.4, (l1_ratio, diversity)
