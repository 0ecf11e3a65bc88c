"""The identity metric: dlib's real recognizer on the real GRID faces, and the summary's arithmetic."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces.identity import (
    SAME_PERSON_DISTANCE,
    FaceIdentity,
    embeddings_detector,
    identity_summary,
    load_embeddings,
    save_embeddings,
)


def test_recognizer_embeds_real_faces_and_finds_none_in_noise(grid_dir, tmp_path):
    from pipeline.data.faces import DlibCnnDetector, crop_face
    from pipeline.data.media import decode_frame, probe

    recognizer, detector = FaceIdentity(), DlibCnnDetector(0)
    embeddings = []
    for name in ("bbaf2n.mpg", "brbk7n.mpg", "lbax4n.mpg"):
        info = probe(grid_dir / name)
        frame = decode_frame(grid_dir / name, 1.0, info.width, info.height)
        crop = crop_face(frame, max(detector.detect(frame), key=lambda b: b.score), 0.35, 160)
        embeddings.append(recognizer.embed(crop))
    assert all(e is not None and e.shape == (128,) for e in embeddings)
    rng = np.random.default_rng(0)
    assert recognizer.embed(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) is None
    assert recognizer.embed(np.zeros((64, 64), dtype=np.uint8)) is None  # grayscale: no face, not a crash
    # each miss has its own reason
    assert recognizer.embed_or_reason(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)) == "no_face"
    assert recognizer.embed_or_reason(np.zeros((64, 64), dtype=np.uint8)) == "grayscale"
    assert recognizer.embed_or_reason(np.repeat(crop[..., :1], 3, axis=2)) == "grayscale"  # gray in RGB
    assert recognizer.embed_or_reason(crop[:10, :10]) == "too_small"


def _grid_crops(grid_dir):
    from pipeline.data.faces import DlibCnnDetector, crop_face
    from pipeline.data.media import decode_frame, probe

    detector = DlibCnnDetector(0)
    crops = []
    for name in ("bbaf2n.mpg", "brbk7n.mpg", "lbax4n.mpg"):
        info = probe(grid_dir / name)
        frame = decode_frame(grid_dir / name, 1.0, info.width, info.height)
        crops.append(crop_face(frame, max(detector.detect(frame), key=lambda b: b.score), 0.35, 160))
    return crops


def test_hog_detector_finds_the_same_faces_as_the_cnn(grid_dir):
    """The fast detector (the demo's) aligns the real GRID faces as the CNN does: each speaker's two embeddings are
    the same person by dlib's own threshold, and noise is still no face."""
    cnn, hog = FaceIdentity("cnn"), FaceIdentity("hog")
    assert (cnn.detector, hog.detector) == ("cnn", "hog")
    for crop in _grid_crops(grid_dir):
        a, b = cnn.embed(crop), hog.embed(crop)
        assert a is not None and b is not None
        assert np.linalg.norm(a - b) < SAME_PERSON_DISTANCE / 2
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    assert hog.embed_or_reason(noise) == "no_face"


def test_unknown_detector_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="identity detector 'haar' is not one of cnn, hog"):
        FaceIdentity("haar")


def test_embeddings_file_records_its_detector(tmp_path):
    a = np.arange(128, dtype=np.float64)
    save_embeddings(tmp_path / "hog.npz", ["k1"], {"true_face": [a]}, "hog")
    save_embeddings(tmp_path / "default.npz", ["k1"], {"true_face": [a]})
    assert embeddings_detector(tmp_path / "hog.npz") == "hog"
    assert embeddings_detector(tmp_path / "default.npz") == "cnn"
    assert set(load_embeddings(tmp_path / "hog.npz")["k1"]) == {"true_face"}  # the record is not an embedding
    with open(tmp_path / "old.npz", "wb") as fh:  # written before the detector was recorded
        np.savez(fh, keys=np.array(["k1"]), true_face=a[None], true_face_reason=np.array([""]))
    assert embeddings_detector(tmp_path / "old.npz") == "cnn"


def test_embeddings_file_keeps_embeddings_and_reasons(tmp_path):
    a = np.arange(128, dtype=np.float64)
    save_embeddings(tmp_path / "identity.npz", ["k1", "k2", "k3"],
                    {"true_face": [a, "grayscale", None], "face_to_face": ["too_small", a, a]})
    loaded = load_embeddings(tmp_path / "identity.npz")
    assert np.array_equal(loaded["k1"]["true_face"], a) and loaded["k1"]["face_to_face"] == "too_small"
    assert loaded["k2"]["true_face"] == "grayscale" and loaded["k3"]["true_face"] == "no_face"


def gen_of(summary):
    return summary["generated"]


def test_summary_counts_missing_faces_and_scores_the_rest():
    a, b, c = np.zeros(128), np.full(128, 0.1), np.full(128, -0.1)  # speaker galleries ~1.13 apart
    speakers = ["s1", "s1", "s2", "s3"]
    embeddings = {"true_face": [a, None, b, c], "face_to_face": [a, a, None, c],
                  "generated": [a + 0.01, None, c, None]}
    out = identity_summary(embeddings, speakers, [1, 2])
    assert out["face_found"] == {"true_face": 0.75, "face_to_face": 0.75, "generated": 0.5}
    assert out["not_found"]["generated"] == {"no_face": 2, "grayscale": 0, "too_small": 0}
    with_reasons = identity_summary({**embeddings, "generated": [a + 0.01, "grayscale", c, "too_small"]},
                                    speakers, [1, 2])
    assert with_reasons["not_found"]["generated"] == {"no_face": 0, "grayscale": 1, "too_small": 1}
    assert with_reasons["generated"] == gen_of(out)
    assert out["gallery_speakers"] == 3 and out["different_speakers"] > SAME_PERSON_DISTANCE
    gen = out["generated"]
    assert gen["n_scored"] == 2 and gen["recall"] == {"1": 0.5, "2": 0.5}  # s1 right, s2's face looks like s3's
    assert gen["same_person"] == 0.5
    none = identity_summary({"true_face": [None, None], "face_to_face": [None, None], "generated": [a, b]},
                            ["s1", "s2"], [1])
    assert none["different_speakers"] is None and none["generated"]["n_scored"] == 0
    assert none["generated"]["distance_to_own"] is None and none["face_found"]["generated"] == 1.0


def test_leakage_check_counts_test_speakers_seen_in_train():
    from pipeline.faces.identity import leakage_check

    a, b = np.zeros(128), np.full(128, 0.2)  # 2.26 apart: different people
    out = leakage_check([a, None, a + 0.01], [a + 0.02, b, None, b], ["s1", "s2", "s3", "s2"])
    assert out["train_faces_found"] == 2 and out["test_speakers_found"] == 2 and out["test_speakers"] == 3
    assert out["test_speakers_with_train_match"] == 1  # s1 is in train under another video; s2 is not
    none = leakage_check([None], [a], ["s1"])
    assert none["test_speakers_with_train_match"] is None and none["train_faces_found"] == 0
