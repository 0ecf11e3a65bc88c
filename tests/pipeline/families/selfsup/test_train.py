"""The self-supervised family's two stages on dummy shards: they train, record what they are in their headers, draw
faces through the family frame, refuse what they cannot use in one sentence, read no label, and repeat byte for
byte."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.errors import TrainingError
from pipeline.common.io import deterministic_tarinfo
from pipeline.faces.generator import GeneratorError
from pipeline.families.contrastive.model import ContrastiveError, load_contrastive
from pipeline.families.contrastive.train import train_contrastive, warn_labels_ignored
from pipeline.families.selfsup.generator import SelfsupGenerator
from pipeline.families.selfsup.train import train_gan
from pipeline.testing.shards import write_dummy_shards

SIZE = 32
TINY_CONTRASTIVE = {
    "speech_channels": [8, 8], "face_widths": [8, 8, 8], "embed_dim": 8, "crop_frames": 100, "steps": 3,
    "batch_size": 4, "lr": 1e-3, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0,
    "device": "cpu", "precision": "fp32", "labels": "",
}
TINY_GAN = {
    "noise_dim": 4, "generator_width": 4, "discriminator_widths": [4, 8], "identity_weight": 1.0,
    "reconstruction_weight": 10.0, "condition_noise": 0.03, "augment": True, "steps": 3, "batch_size": 4, "lr": 5e-4,
    "discriminator_lr": 5e-4, "ema_decay": 0.9,
    "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0, "device": "cpu",
    "precision": "fp32", "labels": "",
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("selfsup") / "shards"
    write_dummy_shards(out, "train", n_samples=10, per_shard=5, image_size=SIZE, n_speakers=4)
    write_dummy_shards(out, "test", n_samples=6, per_shard=4, image_size=SIZE, n_speakers=3)
    return out


def _both(shards: Path, out: Path, contrastive: dict | None = None, gan: dict | None = None) -> tuple[dict, dict]:
    _, first = train_contrastive(shards, out / "contrastive.pt", out / "plots1", contrastive or TINY_CONTRASTIVE)
    (out / "contrastive.json").write_text(json.dumps(first, sort_keys=True))
    second = train_gan(shards, out / "contrastive.pt", out / "gan.pt", out / "gan.json", out / "plots2",
                       gan or TINY_GAN)
    return first, second


@pytest.fixture(scope="module")
def trained(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    _both(shards, out)
    return out


def test_the_contrastive_checkpoint_records_its_width_and_gives_tokens(trained: Path) -> None:
    model, header = load_contrastive(trained / "contrastive.pt", embed_dim=8)
    assert (header["family"], header["stage"], header["embed_dim"], header["frames_per_token"]) == \
        ("contrastive", "contrastive", 8, 4)
    assert header["image_size"] == SIZE and header["history"][-1]["steps"] == 3
    out = model.embed_speech(torch.randn(2, 2, 257, 598))
    assert out.pooled.shape == (2, 8) and out.tokens.shape == (2, 150, 8)
    with pytest.raises(ContrastiveError, match=r"contrastive.pt holds contrastive encoders of 8-d embeddings, but "
                                               r"16-d embeddings are needed here"):
        load_contrastive(trained / "contrastive.pt", embed_dim=16)
    with pytest.raises(ContrastiveError, match=r"gan.pt is a selfsup checkpoint, not the contrastive stage's"):
        load_contrastive(trained / "gan.pt")


def test_the_gan_draws_faces_whose_noise_is_its_seed(trained: Path, shards: Path) -> None:
    from pipeline.data.shards import iter_samples, list_shards

    generator = SelfsupGenerator(trained / "gan.pt")
    assert generator.noise_dim == 4 and generator.image_size == SIZE
    samples = list(iter_samples(list_shards(shards, "test"), fields=["spec", "face"]))
    specs = np.stack([s["spec"] for s in samples])
    faces = generator.generate(specs, seed=5)
    assert faces.shape == (6, SIZE, SIZE, 3) and faces.dtype == np.uint8
    assert np.array_equal(faces, generator.generate(specs, seed=5))
    assert not np.array_equal(generator.generate(specs[:1], seed=0), generator.generate(specs[:1], seed=1))
    # one seed drawn alone is one z for every voice: voice i alone with seed s == row 0 of a batch [voice i, ...]
    alone = generator.generate(specs[3:4], seed=7)
    assert np.array_equal(alone[0], generator.generate(specs[3:5], seed=7)[0])
    speech, true = generator.matching_embeddings(specs, np.stack([s["face"] for s in samples]))
    assert speech.shape == true.shape == (6, 8)
    assert generator.parameter_count() == sum(p.numel() for m in generator.modules for p in m.parameters())
    metrics = json.loads((trained / "gan.json").read_text())
    assert metrics["steps"] == 3 and {"gan", "identity", "l1", "d_loss", "d_real"} <= set(metrics["final"])
    assert metrics["test"]["n"] == 6 and metrics["image_size"] == SIZE


def test_the_saved_generator_is_the_moving_average_of_its_weights(trained: Path, shards: Path,
                                                                  tmp_path: Path) -> None:
    """Three steps from the same seed: without the average the saved G is the last step's; with decay 0.9 (warmed up:
    0.1, 2/11, 3/12 for the updates after steps 1, 2, 3) it is a weighted mean of the three steps' weights, which lies
    apart from the last step's; BatchNorm's statistics are recomputed for whichever weights are saved."""
    import shutil

    import torch

    from pipeline.training.checkpoints import _load_raw

    def generator_state(path: Path) -> dict:
        return {k: v for k, v in _load_raw(path)["state_dict"].items() if k.startswith("generator.")}

    shutil.copy(trained / "contrastive.pt", tmp_path / "contrastive.pt")
    train_gan(shards, tmp_path / "contrastive.pt", tmp_path / "plain.pt", tmp_path / "plain.json", tmp_path / "p",
              {**TINY_GAN, "ema_decay": 0.0})
    averaged, plain = generator_state(trained / "gan.pt"), generator_state(tmp_path / "plain.pt")
    assert averaged.keys() == plain.keys()
    weights = [k for k in plain if k.endswith("weight") and plain[k].dtype.is_floating_point]
    assert weights and all(not torch.equal(averaged[k], plain[k]) for k in weights)
    assert all(torch.isfinite(v).all() for v in averaged.values() if v.dtype.is_floating_point)


def test_checkpoints_and_inputs_it_cannot_use_are_refused_in_one_sentence(trained: Path, shards: Path,
                                                                           tmp_path: Path) -> None:
    with pytest.raises(GeneratorError, match=r"contrastive.pt is a contrastive checkpoint, but the selfsup family"):
        SelfsupGenerator(trained / "contrastive.pt")
    with pytest.raises(GeneratorError, match=r"32-px faces, but 64-px faces are needed"):
        SelfsupGenerator(trained / "gan.pt", image_size=64)
    with pytest.raises(TrainingError, match=r"batch_size is 1: in-batch matching needs at least 2 clips"):
        train_contrastive(shards, tmp_path / "c.pt", tmp_path / "p", {**TINY_CONTRASTIVE, "batch_size": 1})
    with pytest.raises(TrainingError, match=r"batch_size is 1: BatchNorm needs at least 2 faces"):
        train_gan(shards, trained / "contrastive.pt", tmp_path / "g.pt", tmp_path / "g.json", tmp_path / "p",
                  {**TINY_GAN, "batch_size": 1})
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_a_resume_state_of_another_width_is_refused(shards: Path, tmp_path: Path) -> None:
    from pipeline.training.loop import resume_path_for

    torch.save({"fingerprint": "x", "model": {"speech.head.weight": torch.zeros(16, 8)}},
               resume_path_for(tmp_path / "contrastive.pt"))
    with pytest.raises(TrainingError, match=r"resume state .*\.contrastive\.pt\.resume holds 16-d embeddings but "
                                            r"contrastive\.embed_dim is 8: delete it"):
        train_contrastive(shards, tmp_path / "contrastive.pt", tmp_path / "plots", TINY_CONTRASTIVE)


def test_a_labels_file_is_ignored_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert warn_labels_ignored("contrastive", TINY_CONTRASTIVE) is None
    message = warn_labels_ignored("contrastive", {**TINY_CONTRASTIVE, "labels": "data/sample/labels.csv"})
    assert message == capsys.readouterr().err.strip()
    assert message == ("contrastive: warning: labels file data/sample/labels.csv is ignored: the self-supervised "
                       "family is label-free (it reads only face crops, spectrograms, sample keys and video ids)")


def scramble_labels(src: Path, dst: Path) -> int:
    """A copy of the shards ``src`` in ``dst`` with every sample's gender flipped, its age group changed and its
    speaker id moved to another speaker; returns the samples changed."""
    shutil.copytree(src, dst)
    changed = 0
    for path in sorted(dst.glob("*.tar")):
        members = []
        with tarfile.open(path) as tar:
            for member in tar:
                data = tar.extractfile(member).read()
                if member.name.endswith(".meta.json"):
                    meta = json.loads(data)
                    meta.update(gender={"M": "F", "F": "M"}.get(meta.get("gender"), "F"), age_group="senior",
                                speaker_id=f"scrambled{(int(meta['speaker_id'][3:]) * 7 + 3) % 5}")
                    data = json.dumps(meta, sort_keys=True).encode()
                    changed += 1
                members.append((member.name, data))
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            for name, data in members:
                tar.addfile(deterministic_tarinfo(name, len(data)), io.BytesIO(data))
    return changed


def test_scrambled_labels_and_a_labels_file_leave_every_output_byte_identical(shards: Path, trained: Path,
                                                                             tmp_path: Path) -> None:
    """Gender, age and speaker ids scrambled in a copy of the shards, and a labels file named in both sections:
    both stages write the same bytes as the run on the true shards with the same seed (so also: same seed, same
    bytes)."""
    assert scramble_labels(shards, tmp_path / "scrambled") == 16
    labels = {"labels": str(tmp_path / "labels.csv")}
    _both(tmp_path / "scrambled", tmp_path / "run", {**TINY_CONTRASTIVE, **labels}, {**TINY_GAN, **labels})
    for name in ("contrastive.pt", "contrastive.json", "gan.pt", "gan.json"):
        assert (tmp_path / "run" / name).read_bytes() == (trained / name).read_bytes(), name
