"""Checkpoints: header + state dict, deterministic bytes, weights_only loading, clear refusals."""
from __future__ import annotations

import hashlib

import pytest
import torch

from models import build_model
from pipeline.testing.models import TINY_CONFIGS
from pipeline.training.checkpoints import CheckpointError, config_hash, load_checkpoint, read_header, save_checkpoint


def _save(path, arch="face_decoder", seed=0, extra=None):
    torch.manual_seed(seed)
    model = build_model(arch, TINY_CONFIGS[arch])
    save_checkpoint(path, model, arch, TINY_CONFIGS[arch], extra)
    return model


@pytest.mark.parametrize("arch", sorted(TINY_CONFIGS))
def test_round_trip(tmp_path, arch):
    path = tmp_path / f"{arch}.pt"
    model = _save(path, arch, extra={"epoch": 3, "metrics": {"loss": 0.5}})
    loaded, header = load_checkpoint(path, expected_arch=arch)
    assert not loaded.training
    assert header["arch"] == arch and header["config"] == TINY_CONFIGS[arch] and header["format_version"] == 1
    assert header["config_hash"] == config_hash(TINY_CONFIGS[arch]) and header["epoch"] == 3
    assert read_header(path) == header
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_same_weights_give_identical_bytes(tmp_path):
    _save(tmp_path / "a.pt")
    _save(tmp_path / "b.pt")
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.pt", "b.pt")]
    assert digest[0] == digest[1]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_refusals(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.ones(2)}, bare)
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_checkpoint(bare)
    good = tmp_path / "decoder.pt"
    _save(good)
    with pytest.raises(CheckpointError, match="holds a 'face_decoder' model, expected 'speech_encoder'"):
        load_checkpoint(good, expected_arch="speech_encoder")


def test_state_dict_not_fitting_its_config_is_refused(tmp_path):
    path = tmp_path / "liar.pt"
    model = build_model("face_decoder", {**TINY_CONFIGS["face_decoder"], "width": 0.125})
    save_checkpoint(path, model, "face_decoder", TINY_CONFIGS["face_decoder"])  # header claims width 0.0625
    with pytest.raises(CheckpointError, match="does not fit its face_decoder config"):
        load_checkpoint(path)


class Payload:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"header": {"arch": "face_decoder", "format_version": 1}, "state_dict": {"x": Payload()}}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_non_json_header_is_refused(tmp_path):
    model = build_model("voice_gender", TINY_CONFIGS["voice_gender"])
    with pytest.raises(CheckpointError, match="not JSON-able"):
        save_checkpoint(tmp_path / "x.pt", model, "voice_gender", TINY_CONFIGS["voice_gender"], {"t": torch.ones(1)})
    with pytest.raises(CheckpointError, match="reserved"):
        save_checkpoint(tmp_path / "x.pt", model, "voice_gender", TINY_CONFIGS["voice_gender"], {"arch": "x"})
