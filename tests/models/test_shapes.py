"""Shapes of every model at paper size (CPU, batch 1-2, no grad) and at small configs; parameter counts."""
from __future__ import annotations

import pytest
import torch

from models import ModelConfigError, build_model
from models.cbam import CBAM
from models.decoder import FaceDecoder
from models.encoder import SpeechEncoder
from models.gender import VoiceGenderClassifier
from models.vggface import VGGFace


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def test_paper_size_shapes_and_parameter_counts(capsys):
    torch.manual_seed(0)
    counts = {}
    vgg = VGGFace().eval()
    feature, logits = vgg(torch.rand(1, 3, 224, 224))
    assert feature.shape == (1, 4096) and logits.shape == (1, 2622)
    assert vgg.fc6.in_features == 25088
    counts["vggface"] = n_params(vgg)
    del vgg
    decoder = FaceDecoder().eval()
    assert decoder.fc1.in_features == 4096 and decoder.fc1.out_features == 1000
    assert decoder.fc2.out_features == 25088
    image = decoder(torch.randn(1, 4096))
    assert image.shape == (1, 3, 224, 224) and 0 <= image.min() and image.max() <= 1
    counts["face_decoder"] = n_params(decoder)
    del decoder
    spec = torch.randn(2, 2, 257, 598)
    for fusion in ("none", "sum", "fc"):
        encoder = SpeechEncoder(fusion=fusion).eval()
        prior = None if fusion == "none" else torch.randn(4096)
        assert encoder(spec, prior).shape == (2, 4096)
        counts[f"speech_encoder[{fusion}]"] = n_params(encoder)
    gender = VoiceGenderClassifier().eval()
    assert gender(spec).shape == (2, 2)
    counts["voice_gender"] = n_params(gender)
    with capsys.disabled():
        print("\nparameter counts at paper size:")
        for name, count in counts.items():
            print(f"  {name:24s} {count:>12,d}")
    assert counts["vggface"] == 145_002_878  # the published VGG-Face parameter count


@torch.no_grad()
def test_small_configs():
    decoder = FaceDecoder(feature_dim=32, fc1_dim=16, image_size=64, width=0.125)
    assert decoder.start_side == 2 and decoder.fc2.out_features == 64 * 2 * 2
    assert decoder(torch.randn(3, 32)).shape == (3, 3, 64, 64)
    vgg = VGGFace(width=0.125, image_size=64, fc_dim=32, num_classes=7).eval()
    assert vgg.fc6.in_features == 64 * 2 * 2
    feature, logits = vgg(torch.rand(2, 3, 64, 64))
    assert feature.shape == (2, 32) and logits.shape == (2, 7)
    encoder = SpeechEncoder(feature_dim=32, width=0.01, fusion="sum")  # width floors at 1 channel
    assert encoder(torch.randn(1, 2, 257, 598), torch.zeros(1, 32)).shape == (1, 32)
    assert VoiceGenderClassifier(width=0.125, hidden=8)(torch.randn(1, 2, 257, 598)).shape == (1, 2)


@pytest.mark.parametrize("fc7_relu", [True, False])
@torch.no_grad()
def test_vggface_classify_matches_forward(fc7_relu):
    torch.manual_seed(0)
    vgg = VGGFace(width=0.125, image_size=32, fc_dim=16, num_classes=5, fc7_relu=fc7_relu).eval()
    images = torch.rand(3, 3, 32, 32)
    feature, logits = vgg(images)
    torch.testing.assert_close(vgg.features(images), feature)
    torch.testing.assert_close(vgg.classify(feature), logits)
    if fc7_relu:
        assert feature.min() >= 0
    else:
        assert feature.min() < 0  # pre-ReLU features keep their negative part


def test_vggface_preprocessing_is_rgb_255_minus_mean():
    vgg = VGGFace(width=0.125, image_size=32, fc_dim=8, num_classes=2)
    out = vgg.preprocess(torch.ones(1, 3, 2, 2))
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([255 - 129.186, 255 - 104.762, 255 - 93.594]))
    assert "mean" not in vgg.state_dict()


def test_cbam_is_channel_then_spatial():
    torch.manual_seed(0)
    cbam = CBAM(8, reduction=16).eval()  # reduction larger than channels still gives a 1-unit MLP
    x = torch.randn(2, 8, 5, 6)
    y = cbam(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, cbam.spatial(cbam.channel(x)))
    assert not torch.allclose(y, cbam.channel(cbam.spatial(x)))


def test_encoder_fusion_modes():
    torch.manual_seed(0)
    spec = torch.randn(2, 2, 257, 598)
    prior = torch.randn(16)
    summed = SpeechEncoder(feature_dim=16, width=0.0625, fusion="sum").eval()
    with torch.no_grad():
        torch.testing.assert_close(summed(spec, prior), summed.speech_feature(spec) + prior)
        torch.testing.assert_close(summed(spec, prior.expand(2, 16)), summed(spec, prior))
    assert SpeechEncoder(feature_dim=16, width=0.0625, fusion="fc").fusion_fc is not None
    with pytest.raises(ValueError, match="takes no prior"):
        SpeechEncoder(feature_dim=16, width=0.0625)(spec, prior)
    with pytest.raises(ValueError, match="needs a prior"):
        summed(spec)
    with pytest.raises(ValueError, match="prior must have shape"):
        summed(spec, torch.randn(15))
    with pytest.raises(ValueError, match="fusion must be one of"):
        SpeechEncoder(fusion="concat")


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="multiple of 32"):
        FaceDecoder(image_size=100)
    with pytest.raises(ValueError, match="multiple of 32"):
        VGGFace(image_size=48)
    with pytest.raises(ValueError, match="width must be > 0"):
        VGGFace(width=0)
    with pytest.raises(ModelConfigError, match="unknown model architecture"):
        build_model("resnet", {})
    with pytest.raises(ModelConfigError, match="does not take config key"):
        build_model("face_decoder", {"widht": 0.5})
    assert isinstance(build_model("voice_gender", {"width": 0.0625}), VoiceGenderClassifier)
