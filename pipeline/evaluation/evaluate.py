"""Evaluation of one trained speech-encoder variant on the test split (paper Table 4 and beyond).

For every test sample (of the variant's subset) with true face feature ``F`` (raw fc7, not normalised):
- ``S``  = SE(spectrogram) fused with the variant's prior (the final speech feature);
- ``S'`` = VGGFace(FD(S)), the feature of the face generated from speech ("primed" columns);
- ``F2F``= VGGFace(FD(F)), the feature of the face regenerated from the true feature ("Face-to-Face").
Table 4 columns are L1, L2 and angle(deg) of S vs F, of S' vs F, and of F2F vs F, averaged over samples.

Retrieval (SF2F style): each sample's ``S`` ranks all N test faces' true features by cosine; recall@k is the
share of samples whose own face is in the top k (chance = k/N). Because one speaker has several clips whose
faces are near-duplicates, a speaker-level recall is reported too: the gallery is one mean face feature per
test speaker and a hit is the speaker's own entry (chance = k/N_speakers).

Attribute agreement: the attribute probe (``pipeline.faces.probe``, a small CNN trained on the face corpus's true
crops) reads gender, age group, skin tone, hair colour, glasses and beard from the generated face, from the
Face-to-Face reconstruction and from the true face (the probe's own ceiling); each is compared with the speaker's
known attributes (``attributes_path``, the sample's ``speakers.json``), with chance = the majority class's share.
``gender_agreement`` keeps the gender column of it next to the voice classifier's own accuracy.

Outputs in ``out_dir``: ``per_sample.parquet`` (key, speaker, gender, the nine distances, ranks),
``faces.npz`` (uint8 grid faces: original, Face-to-Face, generated, with their keys), ``grid.png``,
``metrics.json`` (same as the stage's metrics file) and ``history.json`` (the training curve from the encoder
checkpoint, so the report stage depends on ``data/eval`` only).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.decoder import ARCH as ARCH_DECODER
from models.encoder import ARCH as ARCH_ENCODER
from pipeline.arspm.variant_inputs import (
    PriorSelector,
    load_gender_predictions,
    load_variant_priors,
    sample_gender,
    subset_filter,
)
from pipeline.arspm.variants import get_variant, priors_needed
from pipeline.common.errors import TrainingError
from pipeline.common.figures import save_grid_png
from pipeline.common.io import atomic_path, write_json
from pipeline.evaluation import scoring as M
from pipeline.training.frozen import check_feature_kind, load_face_encoder, load_frozen


class EvaluationError(TrainingError):
    """Evaluation inputs are missing or inconsistent (checkpoint of another variant, empty test split...)."""


def to_uint8_images(images01: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` floats in [0, 1] → uint8 ``(B, H, W, 3)``."""
    array = images01.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return array.cpu().numpy()


def grid_keys(samples: list[tuple[str, str, str | None]], n: int) -> list[str]:
    """Up to ``n`` keys for the sample grid: the first clip of each speaker, alternating M/F speakers.

    ``samples`` are ``(key, speaker_id, gender)``. Deterministic (sorted by speaker then key), so every variant
    evaluated on the same test split picks the same keys where its subset allows.
    """
    first: dict[str, tuple[str, str | None]] = {}
    for key, speaker, gender in sorted(samples, key=lambda s: (s[1], s[0])):
        first.setdefault(speaker, (key, gender))
    by_gender: dict[str, list[str]] = {"M": [], "F": [], "?": []}
    for speaker in sorted(first):
        key, gender = first[speaker]
        by_gender[gender if gender in ("M", "F") else "?"].append(key)
    chosen: list[str] = []
    queues = [by_gender["M"], by_gender["F"], by_gender["?"]]
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def evaluate_variant(variant_name: str, shards_dir: str | Path, features_dir: str | Path,
                     priors_dir: str | Path, gender_dir: str | Path, encoder_path: str | Path,
                     decoder_path: str | Path, face_encoder_path: str | Path, out_dir: str | Path,
                     metrics_path: str | Path, params: dict[str, Any], probe_path: str | Path,
                     attributes_path: str | Path = "", identity_path: str | Path = "") -> dict[str, Any]:
    """Evaluate one variant on the test split; write ``out_dir`` and ``metrics_path``; return the metrics.

    ``identity_path``: the test faces' and Face-to-Face faces' identity embeddings written by evaluate_decoder;
    a sample not in it (or no file) is embedded here. Only the variant's generated faces are always embedded.
    """
    from pipeline.common.device import resolve_device
    from pipeline.data.datasets import SplitDataset, make_loader, spec_batch
    from pipeline.data.feature_files import feature_dim
    from pipeline.faces.probe import ARCH as PROBE_ARCH
    from pipeline.faces.probe import predict, speaker_attributes

    variant = get_variant(variant_name)
    device = resolve_device(params.get("device", "auto"))
    dim = feature_dim(features_dir)
    priors = load_variant_priors(priors_dir, dim, priors_needed(variant))
    predictions = load_gender_predictions(gender_dir)
    face_encoder, _ = load_face_encoder(face_encoder_path, features_dir, device)
    decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, device)
    encoder, encoder_header = load_frozen(encoder_path, ARCH_ENCODER, device)
    encoder = encoder.to(memory_format=torch.channels_last)  # as trained (pipeline.arspm.train_encoder)
    check_feature_kind(decoder_header, decoder_path, features_dir)
    check_feature_kind(encoder_header, encoder_path, features_dir)
    probe, _ = load_frozen(probe_path, PROBE_ARCH, device)
    attributes = speaker_attributes(attributes_path)
    trained_variant = encoder_header.get("variant")
    if trained_variant is not None and trained_variant != variant.name:
        raise EvaluationError(f"{encoder_path} was trained as variant '{trained_variant}', not '{variant.name}'")
    for name, header in (("encoder", encoder_header), ("decoder", decoder_header)):
        got = int(header["config"]["feature_dim"])
        if got != dim:
            raise EvaluationError(f"the {name} works on {got}-d features but the test features are {dim}-d")
    select_prior = PriorSelector(variant, priors, predictions, device)
    from pipeline.faces.identity import FaceIdentity, embeddings_detector, identity_summary, load_embeddings

    # the generated faces are found by the detector that found the true faces (evaluate_decoder.identity_detector)
    recognizer = FaceIdentity(embeddings_detector(identity_path) if identity_path else "cnn")
    known = load_embeddings(identity_path) if identity_path else {}
    identity: dict[str, list[np.ndarray | str]] = {"true_face": [], "face_to_face": [], "generated": []}

    dataset = SplitDataset(shards_dir, "test", fields=("face", "spec", "meta"), features_dir=features_dir,
                           keep=subset_filter(variant, predictions))
    keys: list[str] = []
    speakers: list[str] = []
    genders: list[str | None] = []
    feats = {"true": [], "speech": [], "speech_face": [], "face_to_face": []}
    probe_reads: dict[str, list[dict[str, np.ndarray]]] = {"generated": [], "face_to_face": [], "true_face": []}
    faces: dict[str, tuple[str, str, np.ndarray]] = {}
    faces_per_group: dict[str, list[str]] = {}
    seen_speakers: set[str] = set()
    grid_rows = int(params["grid_rows"])
    with torch.no_grad():
        for batch in tqdm(make_loader(dataset, int(params["batch_size"])), desc=f"evaluate[{variant.name}]",
                          unit="batch", file=sys.stderr):
            true = batch["feature"].to(device)
            speech = encoder(spec_batch(batch, device, channels_last=True), select_prior(batch["key"]))
            speech_images = decoder(speech)
            f2f_images = decoder(true)
            feats["true"].append(true.cpu().numpy())
            feats["speech"].append(speech.cpu().numpy())
            feats["speech_face"].append(face_encoder.features(speech_images).cpu().numpy())
            feats["face_to_face"].append(face_encoder.features(f2f_images).cpu().numpy())
            for name, images in (("generated", speech_images), ("face_to_face", f2f_images),
                                 ("true_face", batch["face"])):
                probe_reads[name].append(predict(probe, images, device))
            originals = to_uint8_images(batch["face"])
            generated = to_uint8_images(speech_images)
            regenerated = to_uint8_images(f2f_images)
            for name, images in (("true_face", originals), ("face_to_face", regenerated), ("generated", generated)):
                identity[name].extend(known[key][name] if name in known.get(key, {})
                                      else recognizer.embed_or_reason(image)
                                      for key, image in zip(batch["key"], images))
            for i, (key, meta) in enumerate(zip(batch["key"], batch["meta"])):
                keys.append(key)
                speakers.append(str(meta.get("speaker_id") or meta.get("video_id") or key))
                genders.append(meta.get("gender") if meta.get("gender") in ("M", "F") else None)
                # The grid needs the first clip of a few speakers per gender group: keep at most grid_rows
                # per group, in stream order (the same for every variant), so memory stays O(grid_rows).
                group = sample_gender(meta, predictions) or "?"
                if speakers[-1] not in seen_speakers and len(faces_per_group.setdefault(group, [])) < grid_rows:
                    faces_per_group[group].append(key)
                    faces[key] = (speakers[-1], group,
                                  np.stack([originals[i], regenerated[i], generated[i]]))
                seen_speakers.add(speakers[-1])
    if not keys:
        raise EvaluationError(f"variant '{variant.name}': the test split has no samples to evaluate")
    arrays = {name: np.concatenate(parts).astype(np.float64) for name, parts in feats.items()}
    reads = {name: {attr: np.concatenate([part[attr] for part in parts]) for attr in parts[0]}
             for name, parts in probe_reads.items()}
    metrics = variant_metrics(variant.name, keys, speakers, genders, arrays, params, predictions, reads, attributes)
    metrics["identity"] = {"detector": recognizer.detector,
                           **identity_summary(identity, speakers, [int(k) for k in params["recall_k"]])}

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_per_sample(out_dir / "per_sample.parquet", keys, speakers, genders, arrays, metrics.pop("_ranks"),
                      {**{f"identity_{name}": ["found" if isinstance(e, np.ndarray) else e for e in embs]
                          for name, embs in identity.items()},
                       **probe_columns(reads)})
    chosen = grid_keys([(k, s, g) for k, (s, g, _) in faces.items()], grid_rows)
    grid = np.stack([faces[k][2] for k in chosen])  # [n, 3, H, W, 3]
    with atomic_path(out_dir / "faces.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(chosen), faces=grid, rows=np.array(["original", "face_to_face", variant.name]))
    save_grid_png(out_dir / "grid.png", [list(grid[:, r]) for r in range(3)],
                  ["original", "Face-to-Face", variant.name])
    write_json(out_dir / "history.json", encoder_header.get("history", []))
    write_json(out_dir / "metrics.json", metrics)
    write_json(metrics_path, metrics)
    return metrics


def variant_metrics(variant: str, keys: list[str], speakers: list[str], genders: list[str | None],
              arrays: dict[str, np.ndarray], params: dict[str, Any], predictions: dict | None = None,
              probe_reads: dict[str, dict[str, np.ndarray]] | None = None,
              attributes: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    """Table 4 means, retrieval recall (sample and speaker level, with chance) and attribute agreement.

    ``probe_reads``: ``generated|face_to_face|true_face -> attribute -> predicted class [N]`` (the attribute
    probe's readings); ``attributes``: ``speaker_id -> attribute -> class`` (their ground truth)."""
    from pipeline.faces.probe import accuracy, labels_for

    true = arrays["true"]
    n = len(keys)
    out: dict[str, Any] = {"variant": variant, "n_samples": n, "n_speakers": len(set(speakers)),
                           "features_normalised": False}
    for prefix, name in (("", "speech"), ("primed_", "speech_face"), ("face_to_face_", "face_to_face")):
        for metric, values in M.feature_distances(arrays[name], true).items():
            out[f"{prefix}{metric}"] = float(values.mean())
    ks = [int(k) for k in params["recall_k"]]
    ranks = M.retrieval_ranks(arrays["speech"], true)
    out["recall"] = {str(k): v for k, v in M.recall_at_k(ranks, ks).items()}
    out["recall_chance"] = {str(k): M.chance_recall(k, n) for k in ks}
    gallery_speakers = sorted(set(speakers))
    index = {s: i for i, s in enumerate(gallery_speakers)}
    gallery = np.stack([true[[i for i, s in enumerate(speakers) if s == spk]].mean(axis=0)
                        for spk in gallery_speakers])
    speaker_ranks = M.retrieval_ranks(arrays["speech"], gallery, [index[s] for s in speakers])
    out["speaker_recall"] = {str(k): v for k, v in M.recall_at_k(speaker_ranks, ks).items()}
    out["speaker_recall_chance"] = {str(k): M.chance_recall(k, len(gallery_speakers)) for k in ks}
    out["median_rank"] = float(np.median(ranks) + 1)
    labels = labels_for(speakers, attributes or {})
    out["attributes"] = {name: accuracy(reads, labels) for name, reads in (probe_reads or {}).items()}
    gender: dict[str, Any] = {name: out["attributes"][name]["gender"]["accuracy"] for name in out["attributes"]}
    gender["labelled_samples"] = M.agreement(["M"] * n, genders)[1]
    if predictions:
        voice = [predictions.get(k, (None, None))[1] for k in keys]
        gender["voice_classifier"] = M.agreement(voice, genders)[0]
    out["gender_agreement"] = gender
    out["_ranks"] = {"rank": ranks, "speaker_rank": speaker_ranks}
    return out


def probe_columns(reads: dict[str, dict[str, np.ndarray]]) -> dict[str, list[str]]:
    """``probe_<face>_<attribute>``: the class name the attribute probe read from each sample's face, so that a
    wrong reading can be traced to its speaker (e.g. which men's generated faces were read as women)."""
    from pipeline.data.attributes import ATTRIBUTES

    return {f"probe_{face}_{attr}": [str(list(ATTRIBUTES[attr])[int(i)]) for i in classes]
            for face, by_attr in reads.items() for attr, classes in by_attr.items()}


def _write_per_sample(path: Path, keys, speakers, genders, arrays, ranks,
                      text_columns: dict[str, list[str]] | None = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {"key": keys, "speaker_id": speakers, "gender": genders}
    for prefix, name in (("", "speech"), ("primed_", "speech_face"), ("face_to_face_", "face_to_face")):
        for metric, values in M.feature_distances(arrays[name], arrays["true"]).items():
            columns[f"{prefix}{metric}"] = values.astype(np.float64)
    columns["rank"] = np.asarray(ranks["rank"], dtype=np.int64)
    columns["speaker_rank"] = np.asarray(ranks["speaker_rank"], dtype=np.int64)
    text = {"key", "speaker_id", "gender", *(text_columns or {})}
    columns.update(text_columns or {})  # e.g. identity_generated: found | no_face | grayscale | too_small
    order = np.argsort(np.array(keys), kind="stable")
    table = pa.table({k: pa.array(np.asarray(v, dtype=object if k in text else None)[order]
                                  .tolist()) for k, v in columns.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=False, write_statistics=False)


def summary_line(variant: str, m: dict, took: str) -> str:
    """The stage's one-line summary: test size, the Table 4 angles and retrieval recall@k with chance."""
    recall = ", ".join(f"R@{k} {v:.3f} (chance {m['recall_chance'][k]:.3f})" for k, v in m["recall"].items())
    return (f"evaluate[{variant}]: {m['n_samples']} test samples, {m['n_speakers']} speakers; "
            f"angle {m['angle']:.2f} deg, angle' {m['primed_angle']:.2f} deg; {recall}; in {took}")
