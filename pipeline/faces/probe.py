"""The ``attribute_probe`` stage: a small CNN that reads face attributes, trained on the face corpus's true crops.

It measures what a person sees in a face: given the corpus's labelled attributes (``pipeline.data.sample.corpus``:
gender, age group, skin tone, hair colour, glasses, beard), it is trained on the true crops of most corpus
identities and validated on the crops of identities it never saw (``val_fraction`` of them, seeded). The
evaluation then applies it to true test faces (its ceiling), to Face-to-Face reconstructions and to the faces
generated from speech, and compares its readings with the test speakers' known attributes.

Attribute labels of the speech sample's speakers come from ``speakers.json`` (written by the ``sample`` stage)
through :func:`speaker_attributes`; for data without such a file every probe number is absent, not invented.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from models.probe import ARCH
from pipeline.common.errors import PipelineError
from pipeline.data.attributes import ATTRIBUTES, HAIR_NAMES, CorpusError, check_corpus_meta
from pipeline.training.augment import blur_half


class ProbeError(PipelineError, ValueError):
    """The probe cannot be trained or applied (no corpus, a single-class attribute, unreadable labels)."""


def encode_labels(meta: Mapping[str, Any]) -> dict[str, int]:
    """Class index of every attribute of an image's meta (ATTRIBUTES order)."""
    return {name: list(classes).index(meta[name]) for name, classes in ATTRIBUTES.items()}


def load_corpus(corpus_dir: str | Path) -> tuple[torch.Tensor, list[str], dict[str, np.ndarray]]:
    """All corpus crops ``(N, 3, H, W)`` in [0, 1], their identities and ``attribute -> int labels [N]``.

    Every image's meta is checked (identity and each attribute present and valid); a bad one stops with one
    sentence naming the shard."""
    from pipeline.data.datasets import face_to_tensor
    from pipeline.data.shards import iter_samples, list_shards

    shards = list_shards(corpus_dir, "train")
    if not shards:
        raise ProbeError(f"no face corpus shards in {corpus_dir} (run the face_corpus stage first)")
    faces, identities = [], []
    labels: dict[str, list[int]] = {name: [] for name in ATTRIBUTES}
    for shard in shards:
        for sample in iter_samples([shard], fields=["face", "meta"]):
            check_corpus_meta(sample["meta"], str(shard))
            faces.append(face_to_tensor(sample["face"]))
            identities.append(str(sample["meta"]["speaker_id"]))
            for name, index in encode_labels(sample["meta"]).items():
                labels[name].append(index)
    return torch.stack(faces), identities, {k: np.asarray(v, dtype=np.int64) for k, v in labels.items()}


def split_identities(identities: Sequence[str], val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of validation images: an identity is in validation when its seeded hash is below the fraction."""
    def u(identity: str) -> float:
        digest = hashlib.sha256(f"{seed}:{identity}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0 ** 64

    return np.array([u(i) < val_fraction for i in identities], dtype=bool)


@torch.no_grad()
def predict(model: torch.nn.Module, images01: torch.Tensor, device: torch.device,
            batch_size: int = 256) -> dict[str, np.ndarray]:
    """``attribute -> predicted class index [N]`` for images in [0, 1] (eval mode)."""
    model.eval()
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images01), batch_size):
        logits = model(images01[start:start + batch_size].to(device).float())
        for name, value in logits.items():
            out.setdefault(name, []).append(value.argmax(1).cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}


def accuracy(predicted: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """Per attribute: accuracy, chance (the majority class's share of these labels), n and class count.

    An attribute whose labels hold a single class has no meaningful accuracy: it gets ``accuracy: None`` and
    ``note`` saying so (a probe that always answers that class would score 1.0)."""
    out = {}
    for name, truth in labels.items():
        truth = np.asarray(truth)
        keep = truth >= 0  # -1 = unknown
        n = int(keep.sum())
        if n == 0:
            out[name] = {"accuracy": None, "chance": None, "n": 0, "note": "no labelled samples"}
            continue
        values, counts = np.unique(truth[keep], return_counts=True)
        entry = {"n": n, "classes_present": int(len(values)), "chance": float(counts.max() / n)}
        if len(values) < 2:
            entry.update(accuracy=None, note=f"single class ({ATTRIBUTES[name][int(values[0])]!r}) in these labels")
        else:
            entry["accuracy"] = float((np.asarray(predicted[name])[keep] == truth[keep]).mean())
        out[name] = entry
    return out


def train_probe(corpus_dir: str | Path, params: Mapping[str, Any], device: torch.device,
                ) -> tuple[torch.nn.Module, dict[str, Any], dict[str, Any]]:
    """Train the probe on the corpus; returns ``(model, config, metrics)``."""
    from models import build_model
    from pipeline.common.device import seed_everything
    from pipeline.training.loop import recalibrate_batchnorm

    seed = int(params["seed"])
    generator = seed_everything(seed)
    images, identities, labels = load_corpus(corpus_dir)
    val = split_identities(identities, float(params["val_fraction"]), seed)
    train_idx, val_idx = np.flatnonzero(~val), np.flatnonzero(val)
    if len(train_idx) < 2:
        raise ProbeError(f"the face corpus {corpus_dir} leaves fewer than 2 training images for the probe")
    single = [name for name, y in labels.items() if len(np.unique(y[train_idx])) < 2]
    if single:
        raise ProbeError(f"attribute(s) {', '.join(single)} have a single class in the probe's training images: "
                         f"nothing to learn")
    config = {"heads": {name: len(classes) for name, classes in ATTRIBUTES.items()}, "width": float(params["width"])}
    model = build_model(ARCH, config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(params["lr"]))
    targets = {name: torch.from_numpy(y) for name, y in labels.items()}
    batch_size = int(params["batch_size"])
    epochs = int(params["epochs"])
    history = []
    for epoch in tqdm(range(epochs), desc="attribute_probe", unit="epoch", file=sys.stderr):
        model.train()
        order = torch.from_numpy(train_idx)[torch.randperm(len(train_idx), generator=generator)]
        total, seen = 0.0, 0
        for start in range(0, len(order) - 1, batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            batch = _jitter(images[idx], generator, float(params["blur_max"])).to(device)
            logits = model(batch)
            loss = sum(F.cross_entropy(logits[name], targets[name][idx].to(device)) for name in logits)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": round(total / max(seen, 1), 6)})
    ordered = [images[torch.from_numpy(train_idx[i:i + batch_size])] for i in range(0, len(train_idx), batch_size)]
    recalibrate_batchnorm(model, [b.to(device) for b in ordered], lambda b: model(b))
    val_labels = {name: y[val_idx] for name, y in labels.items()}
    val_acc = accuracy(predict(model, images[torch.from_numpy(val_idx)], device), val_labels) if len(val_idx) else {}
    metrics = {"n_train_images": int(len(train_idx)), "n_val_images": int(len(val_idx)),
               "n_val_identities": len({identities[i] for i in val_idx}), "val": val_acc, "history": history}
    return model.eval(), config, metrics


def _jitter(images: torch.Tensor, generator: torch.Generator, blur_max: float = 0.0) -> torch.Tensor:
    """Small random shifts and brightness, so the probe reads shapes and colours, not exact pixels; and, for half
    the batch, a Gaussian blur of sigma up to ``blur_max`` px. Decoded faces are smoother than the crops: a probe
    that never saw a blurred face reads a decoded man's soft hair edge as a woman's hair beside the face."""
    from pipeline.training.augment import random_shift

    b, _, h, _ = images.shape
    out = random_shift(images, max(1, h // 32), generator)
    out = out * (0.9 + 0.2 * torch.rand(b, 1, 1, 1, generator=generator))
    out = blur_half(out, generator, blur_max)
    return out.clamp_(0, 1)


def speaker_attributes(path: str | Path) -> dict[str, dict[str, int]]:
    """``speaker_id -> attribute -> class index`` from a ``speakers.json`` as the ``sample`` stage writes it.

    ``""`` or a missing file gives ``{}`` (no labels: probe numbers are reported as absent). A record without
    one of the attributes stops with one sentence naming the file."""
    from pipeline.common.io import read_json

    if not path or not Path(path).is_file():
        return {}
    out = {}
    for speaker_id, record in read_json(path).items():
        try:
            hair = "grey" if record["age_group"] == "senior" else HAIR_NAMES[int(record["hair_colour"])]
            meta = {"speaker_id": speaker_id, "gender": record["gender"], "age_group": record["age_group"],
                    "skin": int(record["skin"]), "hair": hair, "glasses": bool(record["glasses"]),
                    "beard": bool(record["beard"])}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ProbeError(f"{path}: speaker {speaker_id} lacks a readable attribute ({exc})") from None
        try:
            check_corpus_meta(meta, str(path))
        except CorpusError as exc:
            raise ProbeError(str(exc)) from None
        out[str(speaker_id)] = encode_labels(meta)
    return out


def labels_for(speakers: Sequence[str], attributes: Mapping[str, Mapping[str, int]]) -> dict[str, np.ndarray]:
    """``attribute -> class index [N]`` for samples of ``speakers`` (-1 where a speaker has no labels)."""
    return {name: np.array([attributes.get(s, {}).get(name, -1) for s in speakers], dtype=np.int64)
            for name in ATTRIBUTES}
