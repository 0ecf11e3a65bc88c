"""Loading converted VGG-Face weights: checksum first, weights_only, exact key set and shapes."""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from models.vggface import VGGFace, VGGFaceWeightsError, file_sha256, load_vggface_weights
from pipeline.testing.models import TINY_CONFIGS, VGG_FACE_DAG_KEYS, write_converted_vggface


class NotATensor:
    """Anything pickled that is not a tensor: weights_only=True must refuse to build it."""

    def __init__(self) -> None:
        self.payload = "not weights"


def test_model_keys_are_the_converted_dag_keys():
    state = VGGFace().state_dict()
    assert list(state) == list(VGG_FACE_DAG_KEYS)
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3) and shapes["fc6.weight"] == (4096, 25088)
    assert shapes["fc8.weight"] == (2622, 4096)


def test_round_trip_of_a_generated_converted_file(tmp_path):
    path = tmp_path / "vgg_face_dag.pth"
    torch.manual_seed(1)
    source = VGGFace(**TINY_CONFIGS["vggface"]).eval()
    sha = write_converted_vggface(path, source)
    loaded = VGGFace(**TINY_CONFIGS["vggface"]).eval()
    load_vggface_weights(loaded, path, sha.upper())  # case-insensitive checksum
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images)[1], source(images)[1])


def test_wrong_or_missing_checksum_is_refused(tmp_path):
    path = tmp_path / "vgg_face_dag.pth"
    write_converted_vggface(path)
    model = VGGFace(**TINY_CONFIGS["vggface"])
    with pytest.raises(VGGFaceWeightsError, match="expected 0000"):
        load_vggface_weights(model, path, "0" * 64)
    with pytest.raises(VGGFaceWeightsError, match="no SHA-256 given"):
        load_vggface_weights(model, path, "")
    with pytest.raises(VGGFaceWeightsError, match="not found"):
        load_vggface_weights(model, tmp_path / "absent.pth", "0" * 64)


def test_wrong_key_set_is_refused(tmp_path):
    state = OrderedDict(VGGFace(**TINY_CONFIGS["vggface"]).state_dict())
    state["classifier.weight"] = state.pop("fc8.weight")  # e.g. a torchvision-style VGG file
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    with pytest.raises(VGGFaceWeightsError, match=r"missing \['fc8.weight'\], unexpected \['classifier.weight'\]"):
        load_vggface_weights(VGGFace(**TINY_CONFIGS["vggface"]), path, file_sha256(path))


def test_wrong_shapes_are_refused(tmp_path):
    path = tmp_path / "other_width.pth"
    sha = write_converted_vggface(path, VGGFace(width=0.125, image_size=32, fc_dim=16, num_classes=5))
    with pytest.raises(VGGFaceWeightsError, match="wrong shapes"):
        load_vggface_weights(VGGFace(**TINY_CONFIGS["vggface"]), path, sha)


def test_pickled_non_tensor_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1_1.weight": NotATensor()}, path)
    with pytest.raises(VGGFaceWeightsError, match="not a plain tensor state dict"):
        load_vggface_weights(VGGFace(**TINY_CONFIGS["vggface"]), path, file_sha256(path))
