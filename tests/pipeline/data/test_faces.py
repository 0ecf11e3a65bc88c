"""Face choice and crop; the dlib and face-alignment detectors through their real code (no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.faces import (
    FAN_FILE,
    S3FD_FILE,
    CenterDetector,
    DetectorError,
    FaceBox,
    FaceError,
    choose_face,
    crop_face,
    make_detector,
)


def test_choose_face_nearest_to_manifest_centre():
    left = FaceBox(10, 40, 50, 80, 0.9)      # centre (30, 60) of a 200x120 frame → (0.15, 0.5)
    right = FaceBox(140, 40, 180, 80, 0.5)   # centre (160, 60) → (0.8, 0.5)
    assert choose_face([left, right], (0.75, 0.5), 200, 120, 0.2) == right
    assert choose_face([left, right], (0.2, 0.45), 200, 120, 0.2) == left
    with pytest.raises(FaceError) as err:
        choose_face([left, right], (0.5, 0.5), 200, 120, 0.2)
    assert err.value.reason == "face_off_centre"
    with pytest.raises(FaceError) as err:
        choose_face([], (0.5, 0.5), 200, 120, 0.2)
    assert err.value.reason == "no_face"


def test_center_detector_box():
    frame = np.zeros((100, 200, 3), np.uint8)
    (box,) = CenterDetector(0.4).detect(frame, center=(0.25, 0.5))
    assert box.center == (50.0, 50.0) and box.x1 - box.x0 == pytest.approx(40.0)


def test_crop_is_square_resized_and_black_outside_the_frame():
    frame = np.full((100, 100, 3), 200, np.uint8)
    face = crop_face(frame, FaceBox(0, 0, 40, 40, 1.0), margin=0.5, image_size=32)
    assert face.shape == (32, 32, 3) and face.dtype == np.uint8
    assert face[0, 0].max() < 30          # outside the frame: black padding
    assert face[-1, -1].min() > 170       # inside: the frame's grey


def test_dlib_finds_nothing_on_a_blank_frame():
    det = make_detector("dlib", dlib_upsample=0)
    assert det.detect(np.full((120, 160, 3), 128, np.uint8)) == []


def test_unknown_detector_and_missing_weights(tmp_path, monkeypatch):
    with pytest.raises(DetectorError):
        make_detector("haar")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(DetectorError, match="not found"):
        make_detector("face_alignment", device="cpu")


def test_face_alignment_code_path_with_generated_weights(tmp_path, monkeypatch):
    """S3FD and FAN state_dicts with random weights under the names face-alignment looks for → real loading."""
    import face_alignment.utils as fa_utils
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    # face-alignment's landmark decoding is numba-jitted without a cache: ~40 s of compilation per process on
    # this box, unrelated to weight loading. Run the same functions as plain Python here.
    for name in ("_get_preds_fromhm", "transform_np"):
        monkeypatch.setattr(fa_utils, name, getattr(fa_utils, name).py_func)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ckpt = tmp_path / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    detector_net = s3fd()
    # random classifier heads would score thousands of anchors as faces (minutes of NMS + FAN on CPU):
    # make every anchor background, so the real detection code runs and returns quickly
    with torch.no_grad():
        for name, module in detector_net.named_modules():
            if name.endswith("mbox_conf"):
                module.weight.zero_()
                module.bias.fill_(5.0)
                module.bias[-1] = -5.0
    torch.save(detector_net.state_dict(), ckpt / S3FD_FILE)
    torch.save(FAN(4).state_dict(), ckpt / FAN_FILE)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))  # must come from face_alignment_dir
    from torch import hub as torch_hub
    before = torch_hub.get_dir()
    det = make_detector("face_alignment", device="cpu", face_alignment_dir=str(ckpt))
    assert torch_hub.get_dir() == before
    frame = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    boxes = det.detect(frame)
    assert isinstance(boxes, list)
    assert all(isinstance(b, FaceBox) for b in boxes)
    assert boxes == []
    # the box → FAN landmarks → FaceBox path, with S3FD's output replaced by one known box
    monkeypatch.setattr(det._fa.face_detector, "detect_from_image",
                        lambda image: [np.array([20.0, 10.0, 90.0, 80.0, 0.9])])
    (box,) = det.detect(frame)
    assert box.as_list() == [20.0, 10.0, 90.0, 80.0] and box.score == pytest.approx(0.9)
    assert len(box.landmarks) == 68 and len(box.landmarks[0]) == 2


def test_dlib_models_come_from_the_installed_package_and_a_missing_one_is_one_sentence(monkeypatch):
    from pathlib import Path

    from pipeline.data.faces import DLIB_MODEL_FILES, DetectorError, dlib_model_path

    for name, file in DLIB_MODEL_FILES.items():
        assert Path(dlib_model_path(name)).name == file and Path(dlib_model_path(name)).stat().st_size > 50_000
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DetectorError, match="pip install face-recognition-models==0.3.0"):
        dlib_model_path("cnn_detector")


def test_align_face_levels_a_tilted_eye_line():
    """Two bright dots as eyes on a line turned 20 degrees: after alignment they sit level at (0.5, EYE_Y)."""
    import math

    from pipeline.data.faces import EYE_DISTANCE, EYE_Y, align_face

    frame = np.zeros((200, 200, 3), dtype=np.uint8)
    left = (80.0, 90.0)
    right = (80.0 + 40 * math.cos(math.radians(20)), 90.0 + 40 * math.sin(math.radians(20)))
    for x, y in (left, right):
        frame[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] = 255
    crop = align_face(frame, left, right, margin=0.35, image_size=100).sum(axis=2)
    ys, xs = np.nonzero(crop > 200)
    halves = [xs < 50, xs >= 50]
    (ly, lx), (ry, rx) = [(ys[h].mean(), xs[h].mean()) for h in halves]
    assert abs(ly - ry) < 1.0 and abs((ly + ry) / 2 - 100 * EYE_Y) < 1.5
    assert abs((rx - lx) - 100 * EYE_DISTANCE / 1.35) < 1.5 and abs((lx + rx) / 2 - 50) < 1.5


def test_align_needs_a_real_detector():
    from pipeline.data.preprocess import PreprocessConfig, PreprocessError

    with pytest.raises(PreprocessError, match="align: eyes needs a detector"):
        PreprocessConfig.from_params({"detector": "center", "align": "eyes"})
    with pytest.raises(PreprocessError, match="align must be none or eyes"):
        PreprocessConfig.from_params({"detector": "dlib", "align": "mouth"})
