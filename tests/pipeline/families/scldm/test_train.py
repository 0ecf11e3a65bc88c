"""SCLDM's three stages on dummy shards: the autoencoder records its latent shape and scaling factor, the diffusion
model its prior (the priors stage's faces, or none), sampling writes its settings and figure; a latent size the
blocks do not make, and a prior face that is not a training clip, are refused in one sentence; everything repeats
byte for byte from the same seed on CPU with one thread."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.errors import TrainingError
from pipeline.families.contrastive.train import train_contrastive
from pipeline.families.scldm.autoencoder import load_autoencoder, train_autoencoder
from pipeline.families.scldm.generator import ScldmGenerator
from pipeline.families.scldm.model import read_sampler
from pipeline.families.scldm.sample import run_sample
from pipeline.families.scldm.train import NEUTRAL_FACES, train_diffusion
from pipeline.testing.shards import write_dummy_shards

SIZE = 32
ADAM = {"lr": 1e-3, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0, "device": "cpu",
        "precision": "fp32"}
TINY_CONTRASTIVE = {"speech_channels": [8, 8], "face_widths": [8, 8, 8], "embed_dim": 8, "crop_frames": 100,
                    "steps": 2, "batch_size": 4, "labels": "", **ADAM}
TINY_AUTOENCODER = {"widths": [4, 8, 8], "latent_channels": 2, "latent_size": 8, "layers_per_block": 1,
                    "kl_weight": 1e-6, "steps": 3, "batch_size": 4, **ADAM}
TINY_DIFFUSION = {"widths": [8, 8], "layers_per_block": 1, "attention": False, "prediction_type": "v_prediction",
                  "train_timesteps": 100, "condition_dropout": 0.2, "condition_noise": 0.03, "ema_decay": 0.9, "prior": True, "steps": 3,
                  "batch_size": 4, **ADAM}
TINY_SAMPLE = {"ddim_steps": 2, "guidance_scale": 2.0, "temperature": 0.8, "samples_per_voice": 3, "voices": 2, "seed": 0,
               "device": "cpu"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scldm")
    write_dummy_shards(root / "shards", "train", n_samples=10, per_shard=5, image_size=SIZE, n_speakers=4)
    write_dummy_shards(root / "shards", "test", n_samples=4, per_shard=4, image_size=SIZE, n_speakers=2)
    write_dummy_shards(root / "corpus", "train", n_samples=6, per_shard=6, image_size=SIZE, n_speakers=3, seed=1)
    train_contrastive(root / "shards", root / "contrastive.pt", root / "plots", TINY_CONTRASTIVE)
    from pipeline.data.label_free import LabelFreeSplit

    keys = sorted(item["key"] for item in LabelFreeSplit(root / "shards", "train"))
    (root / "priors").mkdir()
    (root / "priors" / NEUTRAL_FACES).write_text(json.dumps(
        {"mode": "balanced", "clips": 4, "faces": [[keys[0], 0.5], [keys[1], 0.5], [keys[4], 1.0], [keys[7], 1.0]]}))
    return root


def _run(data: Path, out: Path, diffusion: dict | None = None) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ae = train_autoencoder(data / "corpus", data / "shards", out / "ae.pt", out / "ae.json", out / "ae_plots",
                               TINY_AUTOENCODER)
        diff = train_diffusion(data / "shards", data / "contrastive.pt", out / "ae.pt", data / "priors" / NEUTRAL_FACES,
                               out / "scldm.pt", out / "scldm.json", out / "scldm_plots",
                               diffusion or TINY_DIFFUSION)
        sample = run_sample(out / "scldm.pt", data / "shards", out / "sample", TINY_SAMPLE)
    finally:
        torch.set_num_threads(threads)
    return {"ae": ae, "diffusion": diff, "sample": sample}


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run1")
    return out, _run(data, out)


@pytest.mark.slow
def test_the_stages_record_what_they_are_and_repeat_byte_for_byte(data: Path, trained: tuple[Path, dict],
                                                                   tmp_path: Path) -> None:
    out, m = trained
    _, header = load_autoencoder(out / "ae.pt")
    assert header["latent_shape"] == [2, 8, 8] and m["ae"]["latent_shape"] == [2, 8, 8]
    assert header["scaling_factor"] == pytest.approx(1 / header["latent_std"])
    assert m["ae"]["test"]["n"] == 4 and 0 < m["ae"]["test"]["reconstruction_l1"] < 1
    assert (out / "ae_plots" / "reconstructions.png").is_file()
    assert m["diffusion"]["prior"]["used"] and m["diffusion"]["prior"]["faces"] == 4
    assert m["diffusion"]["prediction_type"] == "v_prediction"
    generator = ScldmGenerator(out / "scldm.pt", out / "sample" / "sampler.json")
    assert generator.header["scheduler"]["clip_sample"] is False
    assert read_sampler(out / "sample" / "sampler.json") == {"ddim_steps": 2, "guidance_scale": 2.0,
                                                                   "temperature": 0.8, "seed": 0}
    assert (out / "sample" / "samples.png").is_file() and m["sample"]["faces"] == 6
    again = tmp_path / "run2"
    _run(data, again)
    for name in ("ae.pt", "ae.json", "scldm.pt", "scldm.json", "sample/sampler.json", "sample/samples.png"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name


@pytest.mark.slow
def test_the_prior_is_the_weighted_mean_latent_of_the_priors_stage_faces(data: Path,
                                                                         trained: tuple[Path, dict]) -> None:
    from pipeline.families.scldm.autoencoder import encode_faces, split_faces

    out, _ = trained
    autoencoder, header = load_autoencoder(out / "ae.pt")
    keys, faces = split_faces(data / "shards", "train")
    with torch.no_grad():
        latents = dict(zip(keys, encode_faces(autoencoder, faces) * header["scaling_factor"]))
    chosen = json.loads((data / "priors" / NEUTRAL_FACES).read_text())["faces"]
    expected = sum(w * latents[k] for k, w in chosen) / sum(w for _, w in chosen)
    generator = ScldmGenerator(out / "scldm.pt", out / "sample" / "sampler.json")
    assert torch.allclose(generator.prior, expected, atol=1e-5)


@pytest.mark.slow
def test_without_the_prior_the_prior_latent_is_zero(data: Path, tmp_path: Path) -> None:
    m = train_diffusion(data / "shards", data / "contrastive.pt", _autoencoder(data, tmp_path),
                        data / "priors" / NEUTRAL_FACES, tmp_path / "scldm.pt", tmp_path / "scldm.json",
                        tmp_path / "plots", {**TINY_DIFFUSION, "prior": False, "prediction_type": "epsilon"})
    assert not m["prior"]["used"] and m["prior"]["residual_rms"] == pytest.approx(m["prior"]["latent_rms"])
    generator = ScldmGenerator(tmp_path / "scldm.pt", {"ddim_steps": 1, "guidance_scale": 1.0, "temperature": 1.0,
                                                           "seed": 0})
    assert float(generator.prior.abs().max()) == 0.0 and "no prior" in generator.description
    assert generator.generate(np.zeros((1, 2, 257, 598), np.float32)).shape == (1, SIZE, SIZE, 3)


def _autoencoder(data: Path, tmp_path: Path) -> Path:
    path = tmp_path / "ae.pt"
    if not path.is_file():
        train_autoencoder(data / "corpus", data / "shards", path, tmp_path / "ae.json", tmp_path / "ae_plots",
                          {**TINY_AUTOENCODER, "steps": 1})
    return path


def test_a_latent_size_the_blocks_do_not_make_is_refused_before_anything_is_written(data: Path,
                                                                                      tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"^scldm_autoencoder: a 10x10 latent does not divide 32-px faces through "
                                            r"3 blocks \(they give 8x8"):
        train_autoencoder(data / "corpus", data / "shards", tmp_path / "ae.pt", tmp_path / "ae.json",
                          tmp_path / "plots", {**TINY_AUTOENCODER, "latent_size": 10})
    assert not any(tmp_path.iterdir())


def test_a_prior_face_that_is_not_a_training_clip_is_refused(data: Path, tmp_path: Path) -> None:
    faces = tmp_path / NEUTRAL_FACES
    faces.write_text(json.dumps({"mode": "random", "clips": 1, "faces": [["not-a-clip", 1.0]]}))
    with pytest.raises(TrainingError, match=r"1 of the neutral prior's faces are not training clips of .* \(first: "
                                            r"not-a-clip\): rerun the priors stage"):
        train_diffusion(data / "shards", data / "contrastive.pt", _autoencoder(data, tmp_path), faces,
                        tmp_path / "scldm.pt", tmp_path / "scldm.json", tmp_path / "plots", TINY_DIFFUSION)
    assert not (tmp_path / "scldm.pt").exists()
