"""Face choice and crop; the dlib and face-alignment detectors through their real code (no downloads)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.faces import (FAN_FILE, S3FD_FILE, CenterDetector, DetectorError, FaceBox, FaceError,
                            choose_face, crop_face, make_detector)


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
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    import face_alignment.utils as fa_utils

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
