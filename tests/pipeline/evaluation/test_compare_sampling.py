"""The comparison's parts for the self-supervised family: its encoders' matching on true faces, and the
disentanglement grid (one voice x several z along a row, one z x several voices down a column) and its report."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.compare import encoder_matching, noise_grid, noise_spread
from pipeline.evaluation.families import load_generator
from pipeline.evaluation.families_report import attributes_table, kway_table, noise_figures, noise_lines
from pipeline.testing.families import write_tiny_selfsup, write_tiny_sf2f

PARAMS = {"kway_k": [2, 3], "kway_trials": 5, "recall_k": [1, 2], "seed": 0}


@pytest.fixture(scope="module")
def test_split() -> dict:
    rng = np.random.default_rng(0)
    return {"keys": [f"k{i}" for i in range(6)], "speakers": ["a", "a", "b", "b", "c", "c"],
            "specs": rng.standard_normal((6, 2, 257, 598)).astype(np.float16),
            "faces": rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)}


def test_the_grid_is_one_z_per_column_and_one_voice_per_row(tmp_path: Path, test_split: dict) -> None:
    generator = load_generator("selfsup", checkpoint=write_tiny_selfsup(tmp_path / "g.pt", image_size=16))
    grid = noise_grid(generator, test_split, ["k4", "k0"], draws=3, size=16)
    assert grid.shape == (2, 3, 16, 16, 3)
    for row, key in enumerate(("k4", "k0")):
        spec = test_split["specs"][int(key[1])][None]
        for seed in range(3):
            assert np.array_equal(grid[row, seed], generator.generate(spec, batch_size=1, seed=seed)[0])
    assert not np.array_equal(grid[0, 0], grid[0, 1])  # z changes the face of one voice


def test_the_spreads_say_which_factor_changes_the_face(test_split: dict) -> None:
    """A generator blind to z has no spread over z; one blind to the voice none over voices."""
    rng = np.random.default_rng(1)
    per_voice = rng.integers(0, 256, (3, 1, 16, 16, 3), dtype=np.uint8)
    blind_to_z = np.repeat(per_voice, 4, axis=1)
    spread = noise_spread(blind_to_z, test_split["faces"])
    assert spread["z_spread"] == 0 and spread["voice_spread"] > 0.5
    spread = noise_spread(blind_to_z.transpose(1, 0, 2, 3, 4), test_split["faces"])
    assert spread["voice_spread"] == 0 and spread["z_spread"] > 0.5
    assert noise_spread(blind_to_z[:, :1], test_split["faces"])["z_spread"] is None  # one draw: no spread over z


def test_only_a_family_with_its_own_encoders_gets_their_matching(tmp_path: Path, test_split: dict) -> None:
    selfsup = load_generator("selfsup", checkpoint=write_tiny_selfsup(tmp_path / "g.pt", image_size=16))
    matching = encoder_matching(selfsup, test_split, PARAMS)
    assert matching["kway"]["chance@2"] == 0.5 and matching["kway"]["speakers"] == 3
    assert set(matching["sample_recall"]) >= {"recall@1", "recall@2"}
    sf2f = load_generator("sf2f", checkpoint=write_tiny_sf2f(tmp_path / "s.pt", image_size=16))
    assert sf2f.noise_dim == 0 and encoder_matching(sf2f, test_split, PARAMS) is None


def test_the_nearest_training_voices_vote_in_the_familys_own_speech_space(tmp_path: Path, monkeypatch) -> None:
    """Test clips that are the training clips themselves (two shards, read in batches of 4): each test voice's
    nearest training voice is its own, so with k = 1 the vote is the truth and flipped attributes vote wrong
    everywhere; attributes no test speaker holds are not scored, and with none at all there is nothing to report."""
    from pipeline.evaluation import compare
    from pipeline.faces.probe import labels_for
    from pipeline.testing.shards import dummy_sample, write_dummy_shards

    monkeypatch.setattr(compare, "NEIGHBOURS", 1)
    write_dummy_shards(tmp_path / "shards", "train", n_samples=6, per_shard=4, image_size=16)
    samples = [dummy_sample(i, "train", 16) for i in range(6)]
    test = {"specs": np.stack([s["spec"] for s in samples]), "faces": np.stack([s["face"] for s in samples]),
            "speakers": [s["meta"]["speaker_id"] for s in samples]}
    attributes = {"spk000": {"gender": 0}, "spk001": {"gender": 1}, "spk002": {"gender": 0}, "spk003": {"gender": 0}}
    labels = labels_for(test["speakers"], attributes)
    selfsup = load_generator("selfsup", checkpoint=write_tiny_selfsup(tmp_path / "g.pt", image_size=16))
    reference, speakers = compare.train_speech(selfsup, tmp_path / "shards", batch_size=4)
    assert reference.shape[0] == 6 and speakers == test["speakers"]
    vote = compare.voice_neighbours(selfsup, test, tmp_path / "shards", labels, attributes)
    assert vote["k"] == 1 and vote["training_voices"] == 6
    assert vote["attributes"]["gender"]["accuracy"] == 1.0 and vote["attributes"]["gender"]["chance"] == 4 / 6
    assert vote["attributes"]["glasses"]["accuracy"] is None  # no speaker's glasses are known
    flipped = {s: {"gender": 1 - a["gender"]} for s, a in attributes.items()}
    assert compare.voice_neighbours(selfsup, test, tmp_path / "shards", labels,
                                    flipped)["attributes"]["gender"]["accuracy"] == 0
    unknown = labels_for(test["speakers"], {})
    assert compare.voice_neighbours(selfsup, test, tmp_path / "shards", unknown, attributes) is None


def test_the_report_adds_the_voice_neighbours_row_under_the_probes_ceiling() -> None:
    attrs = {"gender": {"accuracy": 0.8, "chance": 0.6}}
    families = {"scldm": {"title": "SCLDM", "attributes": {"gender": {"accuracy": 0.7, "chance": 0.6}},
                          "encoders": {"kway": {}, "voice_neighbours": {"k": 5, "attributes": attrs}}},
                "sf2f": {"title": "SF2F", "attributes": None}}
    rows = attributes_table(families, {"attributes": attrs})
    titles = [row.split(" | ")[0].lstrip("| ") for row in rows[2:]]
    assert titles == ["SCLDM", "SF2F", "true faces (the probe's ceiling)",
                      "SCLDM: its voice space's 5 nearest training voices (no face drawn)"]
    assert "0.800 (0.600)" in rows[-1]


def test_the_report_puts_the_encoders_beside_the_judge_and_draws_the_grid(tmp_path: Path) -> None:
    kway = {"accuracy@2": 0.9, "chance@2": 0.5}
    families = {"sf2f": {"title": "SF2F", "kway": {"accuracy@2": 0.8, "chance@2": 0.5}},
                "selfsup": {"title": "Self-supervised GAN", "kway": {"accuracy@2": 0.7, "chance@2": 0.5},
                            "encoders": {"kway": kway}, "noise": {"z_spread": 0.2, "voice_spread": 0.6}}}
    table = kway_table(families)
    assert table[2:] == ["| SF2F | generated, the judge | 0.800 (0.500) |",
                         "| Self-supervised GAN | generated, the judge | 0.700 (0.500) |",
                         "| Self-supervised GAN | true, its own encoders | 0.900 (0.500) |"]
    assert "| Self-supervised GAN | 0.200 | 0.600 | [disentanglement-selfsup.png](disentanglement-selfsup.png) |" \
        in noise_lines(families)
    grid = np.zeros((2, 3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "faces.npz", keys=np.array(["k0", "k1"]), speakers=np.array(["a", "b"]),
             noise_selfsup=grid, noise_keys_selfsup=np.array(["k1", "k0"]))
    (png,) = noise_figures(tmp_path, {"families": families}, tmp_path)
    assert png.name == "disentanglement-selfsup.png" and png.stat().st_size > 0
