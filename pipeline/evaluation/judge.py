"""The judge: the identity-embedding network that scores every family's generated faces, and nothing else.

Why a judge of its own: a family trained to match the face encoder's features (as AR-SPM is) could score well on
the face encoder's own metric by copying what it encodes rather than by drawing the right person. The judge is
therefore trained only to judge, on identities the face encoder never sees, with another architecture:

- ``kind: trained`` (the demo): ``models.judge.JudgeResNet`` (a small ResNet, not a VGG), trained with a CosFace
  head on the judge corpus (``stages.judge_corpus``: generator indices ``JUDGE_OFFSET + i``). Before training, the
  judge corpus's identities (their generator indices, read from the corpus files: ``pipeline.data.corpus_index``)
  must be disjoint from the face corpus's, on which the face encoder trains; and its image geometry must equal
  the face corpus's (so the judge sees crops framed like the faces it will score). A seeded ``val_fraction`` of the
  judge corpus's identities is held out to measure the judge itself (:func:`retrieval_metrics`).
- ``kind: dlib`` (real faces, the paper configuration): dlib's ResNet face recognizer
  (``dlib_face_recognition_resnet_model_v1``, 128-D) from the pinned ``face-recognition-models`` wheel, on
  150-px chips aligned by dlib's 5-point shape predictor (:class:`DlibJudge`). Nothing is trained; the stage
  writes a header-only checkpoint (:func:`write_dlib_marker`) that pins the model files by SHA-256, so consumers
  load one path, ``data/models/judge.pt``, either way (:func:`load_judge`). Its independence from the face
  encoder cannot be checked from files: dlib's author trained it on about 3 million faces from FaceScrub, the VGG
  face dataset and web images, and the paper's face encoder (Oxford VGG-Face) was trained on that VGG dataset, so
  on celebrities the two may share identities; the metrics say so (``independent: null``).

A judge maps uint8 face crops ``(N, H, W, 3)`` to L2-normalised float32 embeddings ``(N, D)`` (:meth:`Judge.embed`):
batched, without gradients, in eval mode. No family may import this module or ``models.judge`` (.importlinter).
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipeline.common.errors import PipelineError
from pipeline.training.augment import blur_half, gaussian_blur

#: dlib's judge: the recognizer, its landmark model, the chip it embeds
DLIB_ARCH = "dlib_face_recognition_resnet_model_v1"
DLIB_FILES = ("recognizer", "landmarks_5")
DLIB_CHIP_SIZE = 150
DLIB_CHIP_PADDING = 0.25
#: the face corpus's image geometry: a judge corpus must be drawn and cropped the same way
GEOMETRY = ("frame_size", "image_size", "margin", "center_box")
#: the ``judge`` params section's keys (its schema: stages/judge.py)
KEYS = ("kind", "width", "blocks", "embed_dim", "epochs", "batch_size", "lr", "beta1", "eps", "lr_decay",
        "lr_decay_every", "margin", "scale", "val_fraction", "blur_max", "seed", "device")


class JudgeError(PipelineError, ValueError):
    """The judge cannot be trained, written or loaded as asked (shared identities, bad images, missing files)."""


# ------------------------------------------------------------------------------------------- independence

def check_independent(judge_corpus: str | Path, face_corpus: str | Path) -> dict[str, Any]:
    """The judge corpus's identities against the face corpus's, by generator index, from their files.

    Returns what the metrics record (``independent: True``, counts, offsets, index ranges); JudgeError (one
    sentence) when any generator index is in both corpora. Indices are compared whatever the seeds: stricter than
    needed (another seed draws other people at the same index), never weaker."""
    from pipeline.data.attributes import CorpusError
    from pipeline.data.corpus_index import corpus_generator

    try:
        judge, face = corpus_generator(judge_corpus), corpus_generator(face_corpus)
    except CorpusError as exc:
        raise JudgeError(str(exc)) from None
    judge_idx, face_idx = set(judge["indices"].values()), set(face["indices"].values())
    shared = judge_idx & face_idx
    if shared:
        raise JudgeError(f"the judge corpus {judge_corpus} shares {len(shared)} of its {len(judge_idx)} identities "
                         f"with the face corpus {face_corpus} (generator indices {min(shared):,}..{max(shared):,}), "
                         f"on which the face encoder trains: the judge must be trained on identities the face "
                         f"encoder never sees (draw it with the judge_corpus stage)")

    def described(g: Mapping[str, Any], indices: set[int]) -> dict[str, Any]:
        return {"identities": len(indices), "seed": g["seed"], "generator_offset": g["offset"],
                "generator_indices": [min(indices), max(indices)], "offset_recorded": g["recorded"]}

    return {"independent": True, "shared_identities": 0, "judge_corpus": described(judge, judge_idx),
            "face_corpus": described(face, face_idx)}


def check_geometry(judge_corpus: str | Path, face_corpus: str | Path) -> dict[str, Any]:
    """The judge corpus's frame size, crop size, margin and face box, which must equal the face corpus's (from the
    two meta.json); JudgeError (one sentence) naming the first that differs."""
    from pipeline.common.io import read_json

    configs = []
    for corpus in (judge_corpus, face_corpus):
        path = Path(corpus) / "meta.json"
        if not path.is_file():
            raise JudgeError(f"{path} not found: {corpus} is not a finished face corpus")
        configs.append(read_json(path).get("config") or {})
    judge, face = configs
    for key in GEOMETRY:
        if judge.get(key) != face.get(key):
            raise JudgeError(f"the judge corpus has {key} {judge.get(key)} but the face corpus {face.get(key)}: "
                             f"set judge_corpus.{key}: {face.get(key)} so the judge sees crops framed like the "
                             f"faces it scores")
    return {key: judge[key] for key in GEOMETRY}


# ------------------------------------------------------------------------------------------- judges

class Judge:
    """Face crops -> L2-normalised identity embeddings. ``name`` says which judge; ``kind`` is trained or dlib;
    ``image_size`` is the crop side it takes (None: any); ``header`` is its checkpoint header."""

    name: str = ""
    kind: str = ""
    embed_dim: int = 0
    image_size: int | None = None
    batch_size: int = 256

    def __init__(self, header: Mapping[str, Any]):
        self.header = dict(header)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB crops -> ``(N, D)`` float32 unit vectors (batched, no gradients)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise JudgeError(f"the judge takes uint8 (N, H, W, 3) RGB images, got {images.dtype} "
                             f"{tuple(images.shape)}")
        if self.image_size is not None and images.shape[1:3] != (self.image_size, self.image_size):
            raise JudgeError(f"{self.name} was trained on {self.image_size}x{self.image_size} crops, got "
                             f"{images.shape[1]}x{images.shape[2]}")
        if len(images) == 0:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        parts = [self._embed(images[start:start + self.batch_size])
                 for start in range(0, len(images), self.batch_size)]
        out = np.concatenate(parts).astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        if not np.isfinite(out).all() or (norms == 0).any():
            raise JudgeError(f"{self.name} gave a non-finite or zero embedding")
        return out / norms

    def _embed(self, images: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TrainedJudge(Judge):
    """The trained ``judge_resnet`` (``models.judge``), from its checkpoint or the model just trained."""

    kind = "trained"

    def __init__(self, model: nn.Module, header: Mapping[str, Any], device: torch.device | str = "cpu"):
        super().__init__(header)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.embed_dim = int(self.header["config"]["embed_dim"])
        self.image_size = int(self.header["image_size"])
        self.name = str(self.header["name"])

    @torch.no_grad()
    def _embed(self, images: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        batch = batch.permute(0, 3, 1, 2).float().div_(255.0)
        self.model.eval()
        return self.model(batch).float().cpu().numpy()


def dlib_files() -> dict[str, Path]:
    """The dlib model files the dlib judge uses (from face_recognition_models, no download)."""
    from pipeline.data.faces import DetectorError, dlib_model_path

    try:
        return {name: Path(dlib_model_path(name)) for name in DLIB_FILES}
    except DetectorError as exc:
        raise JudgeError(str(exc)) from None


def dlib_description() -> dict[str, Any]:
    """Name, versions and file checksums of the installed dlib judge (what its marker checkpoint records)."""
    from importlib import metadata

    from pipeline.common.io import file_sha256

    try:
        version = metadata.version("face_recognition_models")
    except metadata.PackageNotFoundError:
        version = "unknown"
    import dlib

    return {"kind": "dlib", "name": f"dlib ResNet face recognizer (face_recognition_models {version})",
            "package": "face_recognition_models", "package_version": version, "dlib_version": dlib.__version__,
            "model_files": {path.name: file_sha256(path) for path in dlib_files().values()}}


class DlibJudge(Judge):
    """dlib's ResNet face recognizer on 150-px chips aligned by its 5-point shape predictor.

    Our inputs are already face crops (a detector's box plus a margin), so the whole image is the face box the
    shape predictor starts from: no detector runs. It is cheaper and gives every crop an embedding, where dlib's
    detectors miss small, blurred and generated faces and would leave holes in the comparison; the 5-point
    predictor then places the eyes and nose inside that box, and ``get_face_chip`` aligns the chip as dlib's own
    pipeline does (padding 0.25). dlib's descriptors are not unit length (their usual metric is a Euclidean
    distance of 0.6); here they are L2-normalised like every judge's. CPU: about 0.1 s per face."""

    kind = "dlib"
    embed_dim = 128
    batch_size = 64

    def __init__(self, header: Mapping[str, Any] | None = None):
        import dlib

        described = dlib_description()
        if header is not None:
            recorded = dict(header.get("model_files") or {})
            if recorded != described["model_files"]:
                raise JudgeError(f"the installed dlib model files {sorted(described['model_files'])} differ from "
                                 f"those the judge checkpoint recorded: reinstall face-recognition-models==0.3.0 "
                                 f"or rerun the judge stage")
        super().__init__(header if header is not None else described)
        files = dlib_files()
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(files["landmarks_5"]))
        self._recognizer = dlib.face_recognition_model_v1(str(files["recognizer"]))
        self.name = str(described["name"])

    def chips(self, images: np.ndarray) -> list[np.ndarray]:
        """The aligned 150-px chips the recognizer embeds (the whole image as the face box)."""
        out = []
        for image in images:
            image = np.ascontiguousarray(image)
            rect = self._dlib.rectangle(0, 0, image.shape[1] - 1, image.shape[0] - 1)
            shape = self._landmarks(image, rect)
            out.append(self._dlib.get_face_chip(image, shape, size=DLIB_CHIP_SIZE, padding=DLIB_CHIP_PADDING))
        return out

    def _embed(self, images: np.ndarray) -> np.ndarray:
        descriptors = self._recognizer.compute_face_descriptor(self.chips(images))
        return np.asarray([np.asarray(d, dtype=np.float64) for d in descriptors])


def load_judge(path_or_kind: str | Path, device: torch.device | str = "cpu") -> Judge:
    """The judge of a checkpoint written by the judge stage (trained weights, or the dlib marker), or ``"dlib"``
    for dlib's judge directly."""
    from pipeline.training.checkpoints import CheckpointError, load_checkpoint, read_header

    if str(path_or_kind) == "dlib":
        return DlibJudge()
    try:
        header = read_header(path_or_kind)
        if header.get("kind") == "dlib":
            return DlibJudge(header)
        if header.get("kind") != "trained":
            raise JudgeError(f"{path_or_kind} is not a judge checkpoint (its header has kind "
                             f"{header.get('kind')!r}, not trained or dlib)")
        from models.judge import ARCH

        model, header = load_checkpoint(path_or_kind, expected_arch=ARCH, map_location=device)
    except CheckpointError as exc:
        raise JudgeError(str(exc)) from None
    return TrainedJudge(model, header, device)


# ------------------------------------------------------------------------------------------- measuring a judge

def retrieval_metrics(embeddings: np.ndarray, identities: Sequence[str]) -> dict[str, Any]:
    """How well unit ``embeddings`` tell the ``identities`` of their images apart, with chance levels:

    - ``recall_at_1``: share of images whose nearest other image (cosine) is of the same identity;
    - ``identity_recall_at_1``: share of images whose own identity's centroid (of its other images) is the nearest
      among every identity's centroid (identity-level retrieval; chance ``1 / identities``);
    - ``verification_auc`` over every pair of images (same identity vs not; chance 0.5) and the equal error rate
      ``eer`` (chance 0.5).

    Images whose identity has no other image are left out as queries (they still count as gallery images)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    ids = np.asarray([str(i) for i in identities])
    names, labels = np.unique(ids, return_inverse=True)
    counts = np.bincount(labels)
    queries = counts[labels] >= 2
    if len(names) < 2 or queries.sum() < 2:
        raise JudgeError(f"measuring the judge needs at least 2 identities with 2 images each, got {len(names)} "
                         f"identities of {len(ids)} images")
    n = len(emb)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(1)
    recall = float((labels[nearest] == labels)[queries].mean())
    chance = float(((counts[labels] - 1) / (n - 1))[queries].mean())
    # identity level: leave-one-out centroid of the query's own identity, full centroids of the others
    sums = np.zeros((len(names), emb.shape[1]))
    np.add.at(sums, labels, emb)
    hits = []
    for i in np.flatnonzero(queries):
        centroids = sums.copy()
        centroids[labels[i]] -= emb[i]
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        hits.append(int((centroids @ emb[i]).argmax()) == labels[i])
    upper = np.triu_indices(n, 1)
    scores = sim[upper]
    same = labels[upper[0]] == labels[upper[1]]
    genuine, impostor = np.sort(scores[same]), np.sort(scores[~same])
    auc = float(((np.searchsorted(impostor, genuine, "left") + np.searchsorted(impostor, genuine, "right")) / 2
                 ).mean() / len(impostor)) if len(impostor) else None
    thresholds = np.unique(scores)
    far = 1.0 - np.searchsorted(impostor, thresholds, "left") / max(len(impostor), 1)  # impostors >= t accepted
    frr = np.searchsorted(genuine, thresholds, "left") / max(len(genuine), 1)          # genuine < t rejected
    at = int(np.abs(far - frr).argmin())
    return {"images": int(n), "identities": int(len(names)), "queries": int(queries.sum()),
            "recall_at_1": recall, "chance_recall_at_1": chance,
            "identity_recall_at_1": float(np.mean(hits)), "chance_identity_recall_at_1": 1.0 / len(names),
            "verification_auc": auc, "chance_verification_auc": 0.5,
            "eer": float((far[at] + frr[at]) / 2), "chance_eer": 0.5,
            "mean_genuine_cosine": float(genuine.mean()) if len(genuine) else None,
            "mean_impostor_cosine": float(impostor.mean()) if len(impostor) else None}


def heldout_identities(identities: Sequence[str], fraction: float, seed: int) -> set[str]:
    """The identities held out to measure the judge: those whose seeded hash falls below ``fraction``."""
    def u(identity: str) -> float:
        digest = hashlib.sha256(f"judge:{seed}:{identity}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0 ** 64

    return {i for i in identities if u(i) < fraction}


def corpus_images(corpus_dir: str | Path, keep: set[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """The crops (uint8 ``(N, H, W, 3)``) and identities of a corpus's images (of ``keep``'s identities only)."""
    from pipeline.data.attributes import CorpusError, check_corpus_meta
    from pipeline.data.shards import iter_samples, list_shards

    shards = list_shards(corpus_dir, "train")
    if not shards:
        raise JudgeError(f"no judge corpus shards in {corpus_dir} (run the judge_corpus stage first)")
    faces, ids = [], []
    for shard in shards:
        for sample in iter_samples([shard], fields=["face", "meta"]):
            try:
                check_corpus_meta(sample["meta"], str(shard))
            except CorpusError as exc:
                raise JudgeError(str(exc)) from None
            identity = str(sample["meta"]["speaker_id"])
            if keep is None or identity in keep:
                faces.append(sample["face"])
                ids.append(identity)
    return (np.stack(faces) if faces else np.zeros((0, 1, 1, 3), np.uint8)), ids


def augment(images: torch.Tensor, generator: torch.Generator, blur_max: float) -> torch.Tensor:
    """Random shift (up to 1/16 of the side), horizontal flip and mild brightness (±5 %: skin tone is part of
    identity) of a ``(B, 3, H, W)`` batch in [0, 1]; and half the batch blurred with one sigma drawn in
    0.3..``blur_max`` px: the faces the judge scores are decoded, so smoother than the corpus's crops."""
    from pipeline.training.augment import random_shift

    b, _, h, _ = images.shape
    out = random_shift(images, max(1, h // 16), generator)
    flip = torch.rand(b, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    out = out * (0.95 + 0.1 * torch.rand(b, 1, 1, 1, generator=generator))
    out = blur_half(out, generator, blur_max)
    return out.clamp_(0.0, 1.0)


def measure(judge: Judge, images: np.ndarray, identities: Sequence[str], blur_sigma: float) -> dict[str, Any]:
    """:func:`retrieval_metrics` of ``judge`` on ``images``, plain and (``blur_sigma`` > 0) with every image
    blurred by that sigma, as decoded faces are."""
    out = retrieval_metrics(judge.embed(images), identities)
    if blur_sigma > 0:
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        blurred = (gaussian_blur(tensor, blur_sigma).clamp_(0, 1) * 255.0).round_().to(torch.uint8)
        soft = retrieval_metrics(judge.embed(blurred.permute(0, 2, 3, 1).numpy()), identities)
        out["blurred"] = {"sigma": float(blur_sigma), **{k: soft[k] for k in (
            "recall_at_1", "identity_recall_at_1", "verification_auc", "eer")}}
    return out


# ------------------------------------------------------------------------------------------- the stage

class JudgeTraining(nn.Module):
    """The judge with its CosFace head, while it trains: ``(images, labels) -> margin logits``."""

    def __init__(self, judge: nn.Module, head: nn.Module):
        super().__init__()
        self.judge = judge
        self.head = head

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.head(self.judge(images), labels)


def train_judge(corpus_dir: str | Path, face_corpus_dir: str | Path, out: str | Path, metrics_path: str | Path,
                plots_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """Train the judge on the judge corpus (``kind: trained``) with the training loop every model uses
    (``pipeline.training.loop.fit``), after checking that its identities are not the face corpus's and that its
    crops are framed the same way; measure it on its held-out identities; write the checkpoint and the metrics.
    Returns the metrics."""
    from models.judge import ARCH, CosFaceHead, JudgeResNet
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.common.io import write_json
    from pipeline.data.datasets import SplitDataset
    from pipeline.training.loop import fingerprint, fit, save_final, summary_metrics

    started = time.perf_counter()
    independence = check_independent(corpus_dir, face_corpus_dir)
    geometry = check_geometry(corpus_dir, face_corpus_dir)
    seed = int(params["seed"])
    device = resolve_device(str(params["device"]))
    _, all_ids = corpus_images_meta(corpus_dir)
    identities = sorted(set(all_ids))
    heldout = heldout_identities(identities, float(params["val_fraction"]), seed)
    train_ids = [i for i in identities if i not in heldout]
    if len(train_ids) < 2 or len(heldout) < 2:
        raise JudgeError(f"judge.val_fraction {params['val_fraction']} splits the judge corpus's "
                         f"{len(identities)} identities into {len(train_ids)} to train and {len(heldout)} to "
                         f"measure: each needs at least 2 (draw more identities or change val_fraction)")
    class_of = {identity: index for index, identity in enumerate(train_ids)}
    seed_everything(seed)
    config = {"width": float(params["width"]), "embed_dim": int(params["embed_dim"]), "blocks": int(params["blocks"])}
    judge = JudgeResNet(**config)
    head = CosFaceHead(config["embed_dim"], len(train_ids), float(params["scale"]), float(params["margin"]))
    model = JudgeTraining(judge, head).to(device)
    train_set = SplitDataset(corpus_dir, "train", fields=("face", "meta"), shuffle=True, seed=seed,
                             buffer_size=1000, keep=lambda meta: meta.get("speaker_id") in class_of)
    blur_max = float(params["blur_max"])
    augmenting = {"epoch": -1, "generator": torch.Generator()}

    def step(batch: dict, net: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        if augmenting["epoch"] != train_set.epoch:  # seeded per epoch, so a resumed run augments as an unbroken one
            augmenting["epoch"] = train_set.epoch
            augmenting["generator"].manual_seed(seed * 1_000_003 + train_set.epoch)
        images = augment(batch["face"], augmenting["generator"], blur_max).to(device, non_blocking=True)
        labels = torch.tensor([class_of[m["speaker_id"]] for m in batch["meta"]], device=device)
        logits = net(images, labels)
        loss = F.cross_entropy(logits, labels)
        return loss, {"acc": float((logits.argmax(1) == labels).float().mean())}

    fit_params = {key: params[key] for key in ("epochs", "batch_size", "lr", "beta1", "eps", "lr_decay",
                                               "lr_decay_every")}
    history = fit(model, train_set, step, fit_params, out, plots_dir,
                  fingerprint({"params": dict(params), "config": config, "identities": train_ids}), "judge", device,
                  bn_forward=lambda batch: judge(batch["face"].to(device)))
    summary = summary_metrics(history)
    trained_s = time.perf_counter() - started
    offset = independence["judge_corpus"]["generator_offset"]
    header = {"kind": "trained", "name": f"trained {ARCH} ({len(train_ids)} identities)",
              "image_size": int(geometry["image_size"]), "corpus_identities": len(identities),
              "train_identities": len(train_ids), "heldout_identities": len(heldout),
              "generator_offset": int(offset), "generator_seed": independence["judge_corpus"]["seed"],
              "seed": seed, "epochs": int(params["epochs"]), "margin": float(params["margin"]),
              "scale": float(params["scale"])}
    val_images, val_ids = corpus_images(corpus_dir, heldout)
    val = measure(TrainedJudge(judge, {**header, "config": config}, device), val_images, val_ids, blur_max)
    metrics = {"kind": "trained", "name": header["name"], "arch": ARCH, "config": config, **independence,
               "geometry": geometry, "corpus_identities": len(identities), "train_identities": len(train_ids),
               "heldout_identities": len(heldout), "n_params": sum(p.numel() for p in judge.parameters()),
               "val": val, "train": summary, "history": history, "train_seconds": round(trained_s, 1)}
    save_final(out, judge, ARCH, config, {**header, "independent": True, "val": {
        k: val[k] for k in ("recall_at_1", "chance_recall_at_1", "identity_recall_at_1", "verification_auc")}})
    write_json(metrics_path, metrics)
    return metrics


def corpus_images_meta(corpus_dir: str | Path) -> tuple[list[str], list[str]]:
    """Keys and identities of a corpus's images (meta only: no image is decoded)."""
    from pipeline.data.shards import iter_samples, list_shards

    shards = list_shards(corpus_dir, "train")
    if not shards:
        raise JudgeError(f"no judge corpus shards in {corpus_dir} (run the judge_corpus stage first)")
    keys, ids = [], []
    for sample in iter_samples(shards, fields=["meta"]):
        keys.append(sample["key"])
        ids.append(str((sample.get("meta") or {}).get("speaker_id") or ""))
    if not all(ids):
        raise JudgeError(f"an image of the judge corpus {corpus_dir} has no identity (speaker_id)")
    return keys, ids


def write_dlib_marker(out: str | Path) -> dict[str, Any]:
    """Write the dlib judge's checkpoint: a header only (no weights: dlib's are the pinned wheel's files, named
    with their SHA-256 so that a loader refuses others). Returns the header's description."""
    from pipeline.training.checkpoints import save_checkpoint

    described = dlib_description()
    config = {"chip_size": DLIB_CHIP_SIZE, "chip_padding": DLIB_CHIP_PADDING, "face_box": "whole image",
              "landmarks": "shape_predictor_5_face_landmarks", "embed_dim": DlibJudge.embed_dim}
    save_checkpoint(out, nn.Module(), DLIB_ARCH, config, {**described, "independent": None, "weights":
                    "none in this file: dlib's model files of the face_recognition_models package, by SHA-256"})
    return described


DLIB_INDEPENDENCE = ("not checkable from files: dlib's recognizer was trained by its author on about 3 million "
                     "faces from FaceScrub, the VGG face dataset and web images; the paper's face encoder "
                     "(Oxford VGG-Face) was trained on that VGG dataset, so the two may share identities")


def build_judge(corpus_dir: str | Path, face_corpus_dir: str | Path, out: str | Path, metrics_path: str | Path,
                plots_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The judge stage: train the judge (``kind: trained``), or write dlib's marker checkpoint and measure dlib's
    judge on the judge corpus's held-out identities (``kind: dlib``: nothing is trained; the training keys are
    unused). Writes ``out`` and ``metrics_path``; returns the metrics."""
    from pipeline.common.io import write_json
    from pipeline.common.params import require

    require(dict(params), *KEYS, section="judge")
    kind = str(params["kind"])
    if kind == "trained":
        return train_judge(corpus_dir, face_corpus_dir, out, metrics_path, plots_dir, params)
    if kind != "dlib":
        raise JudgeError(f"judge.kind must be trained or dlib, got {kind!r}")
    started = time.perf_counter()
    described = write_dlib_marker(out)
    Path(plots_dir).mkdir(parents=True, exist_ok=True)  # a declared output: nothing was trained
    (Path(plots_dir) / "dlib.txt").write_text(f"{described['name']}: pretrained, no training curves\n",
                                              encoding="utf-8")
    _, all_ids = corpus_images_meta(corpus_dir)
    heldout = heldout_identities(sorted(set(all_ids)), float(params["val_fraction"]), int(params["seed"]))
    images, ids = corpus_images(corpus_dir, heldout)
    val = measure(load_judge(out), images, ids, float(params["blur_max"]))
    metrics = {**described, "independent": None, "independence": DLIB_INDEPENDENCE,
               "val_note": "dlib's judge on the judge corpus's held-out identities (synthetic faces, not what it "
                           "was trained on)", "heldout_identities": len(heldout), "val": val,
               "seconds": round(time.perf_counter() - started, 1)}
    write_json(metrics_path, metrics)
    return metrics


def summary_line(metrics: Mapping[str, Any], took: str) -> str:
    """The stage's one-line summary: which judge, and how it tells held-out identities apart."""
    val = metrics["val"]
    return (f"judge: {metrics['name']}; on {val['identities']} held-out identities ({val['images']} images) "
            f"recall@1 {val['recall_at_1']:.3f} (chance {val['chance_recall_at_1']:.3f}), identity recall@1 "
            f"{val['identity_recall_at_1']:.3f} (chance {val['chance_identity_recall_at_1']:.3f}), verification "
            f"AUC {val['verification_auc']:.3f}; {took}")
