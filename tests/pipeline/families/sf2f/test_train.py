"""SF2F's two training stages on dummy shards: they run, stop at their step budget, write loadable checkpoints that
the family frame draws faces from, refuse another family's or size's checkpoint, and repeat byte for byte."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.faces.generator import GeneratorError
from pipeline.families.sf2f.generator import Sf2fGenerator
from pipeline.families.sf2f.model import load
from pipeline.families.sf2f.train import train_fuser, train_sf2f
from pipeline.testing.training import make_training_inputs

TINY_SF2F = {
    "identity": "speaker", "image_size": 32, "encoder_channels": [8, 8], "embed_dim": 16, "decoder_width": 16,
    "discriminator_widths": [8, 8], "discriminator_hidden": 16, "gan_weight": 1.0, "identity_weight": 0.05,
    "l1_weight": 10.0, "perceptual_weight": 100.0, "steps": 3, "batch_size": 4, "lr": 5e-4, "beta1": 0.9,
    "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0, "device": "cpu", "precision": "fp32",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_training_inputs(tmp_path_factory.mktemp("sf2f"), n_train=10, n_test=6)


def _train(inputs: dict[str, Path], out: Path, params: dict | None = None) -> dict:
    return train_sf2f(inputs["shards"], inputs["face_encoder"], out / "sf2f_train.pt", out / "m1.json", out / "plots1",
                      params or TINY_SF2F)


def test_both_stages_train_and_draw_faces(inputs: dict[str, Path], tmp_path: Path) -> None:
    first = _train(inputs, tmp_path)
    assert first["steps"] == 3 and first["identities"] == 4
    assert {"l1", "perceptual", "gan", "identity_ce", "d_loss", "d_patch"} <= set(first["final"])
    fuser_params = {k: v for k, v in TINY_SF2F.items() if k in {
        "gan_weight", "identity_weight", "l1_weight", "perceptual_weight", "steps", "batch_size", "lr", "beta1", "eps",
        "lr_decay", "lr_decay_every", "seed", "device", "precision"}}
    second = train_fuser(inputs["shards"], tmp_path / "sf2f_train.pt", inputs["face_encoder"], tmp_path / "fuser.pt",
                         tmp_path / "m2.json", tmp_path / "plots2", {**fuser_params, "lr": 1e-4, "steps": 2})
    assert second["steps"] == 2 and second["parameters"]["fuser"] > 0
    # the encoder and the decoder stayed frozen: stage 2's copy equals stage 1's
    g1, _, _ = load(tmp_path / "sf2f_train.pt")
    g2, _, header = load(tmp_path / "fuser.pt", stage="fuser")
    assert header["family"] == "sf2f" and header["image_size"] == 32
    for name, tensor in g1.state_dict().items():
        assert torch.equal(tensor, g2.state_dict()[name]), name
    generator = Sf2fGenerator(tmp_path / "fuser.pt")
    faces = generator.generate(np.random.default_rng(0).standard_normal((3, 2, 257, 598)).astype(np.float32))
    assert faces.shape == (3, 32, 32, 3) and faces.dtype == np.uint8
    assert generator.parameter_count() == sum(second["parameters"][k] for k in ("encoder", "decoder", "fuser"))


@pytest.mark.slow  # two training runs; the fast lane keeps the other three
def test_same_seed_same_bytes(inputs: dict[str, Path], tmp_path: Path) -> None:
    _train(inputs, tmp_path / "a")
    _train(inputs, tmp_path / "b")
    assert (tmp_path / "a" / "sf2f_train.pt").read_bytes() == (tmp_path / "b" / "sf2f_train.pt").read_bytes()
    assert (tmp_path / "a" / "m1.json").read_bytes() == (tmp_path / "b" / "m1.json").read_bytes()


def test_checkpoints_of_another_family_size_or_stage_are_refused(inputs: dict[str, Path], tmp_path: Path) -> None:
    _train(inputs, tmp_path)
    with pytest.raises(GeneratorError, match=r"32-px faces, but 64-px faces are needed"):
        Sf2fGenerator(tmp_path / "sf2f_train.pt", image_size=64)
    with pytest.raises(GeneratorError, match=r"written by sf2f_train, but an sf2f_fuser checkpoint"):
        load(tmp_path / "sf2f_train.pt", stage="fuser")
    with pytest.raises(GeneratorError, match=r"not a model family's checkpoint \(arch 'vggface'\), but the sf2f"):
        Sf2fGenerator(inputs["face_encoder"])


def test_speaker_identities_need_speaker_labels(tmp_path: Path) -> None:
    from pipeline.common.errors import TrainingError
    from pipeline.testing.shards import write_dummy_shards

    shards = tmp_path / "shards"
    write_dummy_shards(shards, "train", n_samples=4, labelled=True)
    from pipeline.families.sf2f.train import identity_of

    assert identity_of({"speaker_id": "spk001", "video_id": "v"}, "video") == "v"
    with pytest.raises(TrainingError, match="no speaker id .*use identity: video"):
        identity_of({"key": "k", "speaker_id": None, "video_id": "v"}, "speaker")
