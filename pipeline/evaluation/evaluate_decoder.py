"""Evaluation of the face decoder FD alone: does it draw the face it is given? (paper Figure 4, Figure 2)

For the first ``max_samples`` faces of each speech split (shard order) with true face feature ``F``:
- **Face-to-Face pixels**: the L1 between FD(F) and the true crop, as a ratio of the L1 of always answering the
  mean training face (1.0 = no better than the mean face; lower is better). For reference the same ratio of an
  oracle that knows the speaker and answers their mean crop (``speaker_mean_l1_ratio``).
- **Diversity**: the per-pixel standard deviation of FD(F) across samples over that of the true crops
  (1.0 = the decoded faces differ from each other as much as the real ones; a decoder that ignores its input
  draws one face and scores 0).
- **Face-to-Face retrieval** (test): VGGFace(FD(F_i)) ranks all test features F_j by cosine; recall@k of its own
  (chance k/N), sample and speaker level.
- **Attributes** (test): the attribute probe's accuracy on the true crops (its ceiling) and on FD(F), against the
  speakers' known attributes, with chance (the majority class's share).

Figures (``out_dir``): ``figure4.png`` (rows: original and FD(F) for train faces, then for test faces; one
column per speaker) and ``figure2.png`` (FD of the neutral prior at every size of ``priors.convergence_n``).
``metrics.json`` holds the numbers (also written to the stage's metrics file); ``identity.npz`` the test faces'
and their Face-to-Face reconstructions' identity embeddings (``pipeline.faces.identity``), reused by ``evaluate``.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from models.decoder import ARCH as ARCH_DECODER
from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.evaluation import scoring as M
from pipeline.training.frozen import check_feature_kind, load_face_encoder, load_frozen


class DecoderEvaluationError(TrainingError):
    """The decoder cannot be evaluated (no samples, mismatched features, missing convergence priors)."""


def load_split(shards_dir: str | Path, features_dir: str | Path, split: str, limit: int
               ) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """The first ``limit`` crops ``(N, 3, H, W)``, features ``(N, D)``, speaker ids and keys of a split."""
    from pipeline.data.datasets import SplitDataset

    faces, features, speakers, keys = [], [], [], []
    for item in SplitDataset(shards_dir, split, fields=("face", "meta"), features_dir=features_dir):
        keys.append(str(item["key"]))
        faces.append(item["face"])
        features.append(item["feature"])
        meta = item["meta"]
        speakers.append(str(meta.get("speaker_id") or meta.get("video_id") or item["key"]))
        if len(faces) >= limit:
            break
    if not faces:
        raise DecoderEvaluationError(f"the '{split}' split has no samples to evaluate the decoder on")
    return torch.stack(faces), torch.stack(features), speakers, keys


@torch.no_grad()
def decode(decoder: torch.nn.Module, features: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    """FD of every feature row, on the CPU, in [0, 1]."""
    return torch.cat([decoder(features[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(features), batch_size)])


@torch.no_grad()
def prior_faces(decoder: torch.nn.Module, priors: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    """The faces FD draws from prior vectors ``[k, dim]``, as uint8 ``[k, H, W, 3]`` (paper Figure 2; also the
    prior sweep's faces)."""
    from pipeline.evaluation.evaluate import to_uint8_images

    return to_uint8_images(decode(decoder, priors, device, batch_size))


def encode(face_encoder: torch.nn.Module, images: torch.Tensor, device: torch.device, batch_size: int
           ) -> np.ndarray:
    return torch.cat([face_encoder.features(images[i:i + batch_size].to(device)).float().cpu()
                      for i in range(0, len(images), batch_size)]).numpy().astype(np.float64)


def pixel_scores(decoded: torch.Tensor, true: torch.Tensor, mean_face: torch.Tensor,
                 speakers: list[str]) -> dict[str, float]:
    """L1 of the decoded faces, of the mean face and of each speaker's mean crop to the true crops; diversity."""
    l1 = float((decoded - true).abs().mean())
    mean_l1 = float((mean_face.unsqueeze(0) - true).abs().mean())
    speaker_means = {s: true[[i for i, t in enumerate(speakers) if t == s]].mean(0) for s in set(speakers)}
    oracle = torch.stack([speaker_means[s] for s in speakers])
    true_std = float(true.std(0).mean()) if len(true) > 1 else 0.0
    return {
        "n": len(true),
        "l1": l1,
        "mean_face_l1": mean_l1,
        "l1_ratio": l1 / mean_l1 if mean_l1 > 0 else None,
        "speaker_mean_l1_ratio": float((oracle - true).abs().mean()) / mean_l1 if mean_l1 > 0 else None,
        "diversity": float(decoded.std(0).mean()) / true_std if true_std > 0 else None,
    }


def first_per_speaker(speakers: list[str], n: int) -> list[int]:
    """Indices of the first sample of up to ``n`` speakers (sorted by speaker id, so figures are stable)."""
    first: dict[str, int] = {}
    for i, s in enumerate(speakers):
        first.setdefault(s, i)
    return [first[s] for s in sorted(first)[:n]]


def evaluate_decoder(shards_dir: str | Path, features_dir: str | Path, priors_dir: str | Path,
                     decoder_path: str | Path, face_encoder_path: str | Path, probe_path: str | Path,
                     attributes_path: str | Path, out_dir: str | Path, metrics_path: str | Path,
                     params: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate FD on the speech splits; write the figures and ``metrics.json``; return the metrics."""
    from pipeline.common.device import resolve_device
    from pipeline.common.figures import save_grid_png
    from pipeline.data.feature_files import feature_dim
    from pipeline.evaluation.evaluate import to_uint8_images
    from pipeline.faces.probe import ARCH as PROBE_ARCH
    from pipeline.faces.probe import accuracy, labels_for, predict, speaker_attributes

    device = resolve_device(str(params.get("device", "auto")))
    batch_size = int(params["batch_size"])
    limit = int(params["max_samples"])
    dim = feature_dim(features_dir)
    decoder, header = load_frozen(decoder_path, ARCH_DECODER, device)
    if int(header["config"]["feature_dim"]) != dim:
        raise DecoderEvaluationError(f"the decoder takes {header['config']['feature_dim']}-d features but the "
                                     f"features are {dim}-d")
    check_feature_kind(header, decoder_path, features_dir)
    face_encoder, _ = load_face_encoder(face_encoder_path, features_dir, device)
    probe, _ = load_frozen(probe_path, PROBE_ARCH, device)
    attributes = speaker_attributes(attributes_path)

    metrics: dict[str, Any] = {"max_samples": limit}
    splits = {name: load_split(shards_dir, features_dir, name, limit) for name in ("train", "test")}
    mean_face = splits["train"][0].mean(0)
    decoded = {}
    for name, (faces, features, speakers, _) in splits.items():
        decoded[name] = decode(decoder, features, device, batch_size)
        metrics[name] = pixel_scores(decoded[name], faces, mean_face, speakers)

    faces, features, speakers, test_keys = splits["test"]
    ks = [int(k) for k in params["recall_k"]]
    f2f = encode(face_encoder, decoded["test"], device, batch_size)
    true = features.numpy().astype(np.float64)
    ranks = M.retrieval_ranks(f2f, true)
    gallery_ids = sorted(set(speakers))
    gallery = np.stack([true[[i for i, s in enumerate(speakers) if s == g]].mean(0) for g in gallery_ids])
    speaker_ranks = M.retrieval_ranks(f2f, gallery, [gallery_ids.index(s) for s in speakers])
    # Table 4's Face-to-Face row, once over the test split (not per variant: a one-gender variant sees half of it).
    metrics["face_to_face_distances"] = {"n": len(speakers), **{
        metric: float(values.mean()) for metric, values in M.feature_distances(f2f, true).items()}}
    metrics["face_to_face_retrieval"] = {
        "n": len(speakers),
        "recall": {str(k): v for k, v in M.recall_at_k(ranks, ks).items()},
        "recall_chance": {str(k): M.chance_recall(k, len(speakers)) for k in ks},
        "speaker_recall": {str(k): v for k, v in M.recall_at_k(speaker_ranks, ks).items()},
        "speaker_recall_chance": {str(k): M.chance_recall(k, len(gallery_ids)) for k in ks},
    }
    # Identity leakage between the splits, by a recognizer trained on real faces (pipeline.faces.identity)
    from pipeline.faces.identity import FaceIdentity, leakage_check, save_embeddings

    recognizer = FaceIdentity(str(params.get("identity_detector", "cnn")))
    test_identity = {"true_face": [recognizer.embed_or_reason(face) for face in to_uint8_images(faces)],
                     "face_to_face": [recognizer.embed_or_reason(face) for face in to_uint8_images(decoded["test"])]}
    # one train face per train speaker (per video when unlabelled): leakage is about identities, and embedding
    # every train face cost 3x as much on the demo (0.12 s a face) for no other identity
    train_faces, _, train_speakers, _ = splits["train"]
    metrics["identity_leakage"] = leakage_check(
        [recognizer.embed(face) for face in to_uint8_images(train_faces[first_per_speaker(train_speakers, limit)])],
        test_identity["true_face"], speakers) | {"detector": recognizer.detector}
    out_dir = Path(out_dir)
    # the test faces' identity embeddings, which every evaluate@variant reuses instead of embedding them again
    save_embeddings(out_dir / "identity.npz", test_keys, test_identity, recognizer.detector)
    labels = labels_for(speakers, attributes)
    metrics["attributes"] = {
        "labelled_samples": int((labels["gender"] >= 0).sum()),
        "true_face": accuracy(predict(probe, faces, device), labels),
        "face_to_face": accuracy(predict(probe, decoded["test"], device), labels),
    }

    columns = int(params["figure_columns"])
    rows, row_labels = [], []
    for name in ("train", "test"):
        chosen = first_per_speaker(splits[name][2], columns)
        rows += [list(to_uint8_images(splits[name][0][chosen])), list(to_uint8_images(decoded[name][chosen]))]
        row_labels += [f"{name} original", f"{name} FD(F)"]
    save_grid_png(out_dir / "figure4.png", rows, row_labels)

    convergence = Path(priors_dir) / "convergence.npz"
    if not convergence.is_file():
        raise DecoderEvaluationError(f"{convergence} not found (rerun the priors stage)")
    with np.load(convergence, allow_pickle=False) as data:
        sizes, neutral = [int(n) for n in data["n"]], torch.from_numpy(np.asarray(data["neutral"]))
    if neutral.shape[1] != dim:
        raise DecoderEvaluationError(f"the convergence priors are {neutral.shape[1]}-d but the features are {dim}-d")
    save_grid_png(out_dir / "figure2.png", [list(prior_faces(decoder, neutral, device, batch_size))],
                  ["FD(neutral prior)"],
                  column_labels=[f"n={n}" for n in sizes])
    metrics["figure2_n"] = sizes
    write_json(out_dir / "metrics.json", metrics)
    write_json(metrics_path, metrics)
    print(f"evaluate_decoder: test L1 ratio {metrics['test']['l1_ratio']:.3f}, diversity "
          f"{metrics['test']['diversity']:.3f}", file=sys.stderr)
    return metrics


def summary_line(m: dict) -> str:
    """The stage's one-line summary: Face-to-Face L1 against the mean face, diversity and retrieval recall@1."""
    r = m["face_to_face_retrieval"]
    return (f"evaluate_decoder: Face-to-Face L1 / mean-face L1 train {m['train']['l1_ratio']:.3f}, test "
            f"{m['test']['l1_ratio']:.3f}; diversity test {m['test']['diversity']:.3f}; retrieval R@1 "
            f"{r['recall']['1']:.3f} (chance {r['recall_chance']['1']:.3f})")
