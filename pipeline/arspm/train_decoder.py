"""Train the face decoder FD (face feature -> face image) through the frozen face encoder (docs/design.md,
Fidelity to the paper), with the loop every model uses (``pipeline.training.loop.fit``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.decoder import ARCH as ARCH_DECODER
from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.training.distributed import current
from pipeline.training.frozen import load_face_encoder, peek_image_size
from pipeline.training.loop import fingerprint, fit, run_settings, save_final, summary_metrics

#: at most this many floats of corpus face features are kept between epochs by train_decoder (1 GiB)
CORPUS_FEATURE_CACHE_FLOATS = 1 << 28


def train_decoder(corpus_dir: str | Path, shards_dir: str | Path, features_dir: str | Path,
                  face_encoder_path: str | Path, out: str | Path, metrics_path: str | Path, plots_dir: str | Path,
                  params: dict[str, Any]) -> dict[str, Any]:
    """Train FD (face feature → face image) through the frozen face encoder, on ``params['faces']``:

    - ``corpus``: the face-image corpus's crops (the demo); each crop's feature is the frozen face encoder's fc7
      (post- or pre-ReLU as ``features/meta.json`` records, so FD sees the kind of feature the speech side is
      trained towards), computed on the fly;
    - ``shards``: the train split's face crops with their features from ``features_dir`` (the paper: FD is
      trained on AVSpeech's face crops);
    - ``both``: the corpus's crops and the train split's, shuffled together, all with on-the-fly features (the
      paper's FD sees the speakers' own training faces; the corpus adds the identities 53 speakers lack).
    """
    from models import build_model
    from models.losses import DecoderLoss
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.datasets import SplitDataset
    from pipeline.data.feature_files import feature_dim, feature_relu
    from pipeline.training.distributed import rank_device

    device = rank_device(resolve_device(params.get("device", "auto")))  # cuda:<LOCAL_RANK> under torchrun
    seed_everything(int(params["seed"]))
    dim = feature_dim(features_dir)
    face_encoder, _ = load_face_encoder(face_encoder_path, features_dir, device)
    if int(face_encoder.feature_dim) != dim:
        raise TrainingError(f"the face encoder gives {face_encoder.feature_dim}-d features but {features_dir} "
                            f"holds {dim}-d ones (rerun the features stage)")
    faces = str(params.get("faces", "corpus"))
    if faces == "corpus":
        dataset = SplitDataset(corpus_dir, "train", fields=("face",), shuffle=True, seed=int(params["seed"]))
    elif faces == "shards":
        dataset = SplitDataset(shards_dir, "train", fields=("face",), features_dir=features_dir, shuffle=True,
                               seed=int(params["seed"]))
    elif faces == "both":
        dataset = SplitDataset([corpus_dir, shards_dir], "train", fields=("face",), shuffle=True,
                               seed=int(params["seed"]))
    else:
        raise TrainingError(f"train_decoder.faces must be 'corpus', 'shards' or 'both', got {faces!r}")
    image_size = peek_image_size(dataset)
    config = {"feature_dim": dim, "fc1_dim": int(params["fc1_dim"]), "image_size": image_size,
              "width": float(params["width"]), "use_cbam": True,
              "first_map": int(params.get("first_map") or 0) or None}
    model = build_model(ARCH_DECODER, config).to(device)
    criterion = DecoderLoss(alpha=float(params["alpha"]), msssim_win_size=int(params["msssim_win_size"]),
                            cos_weight=float(params["cos_weight"])).to(device)
    use_cos = float(params["cos_weight"]) > 0
    # The frozen face encoder gives a corpus crop the same feature every epoch: compute it once (a sixth of a
    # step on the demo). Bounded, so that a large corpus falls back to computing the rest each time.
    feature_cache: dict[str, torch.Tensor] = {}
    cache_limit = CORPUS_FEATURE_CACHE_FLOATS // max(dim, 1)

    def corpus_features(keys: list[str], target: torch.Tensor) -> torch.Tensor:
        missing = [i for i, key in enumerate(keys) if key not in feature_cache]
        computed: dict[str, torch.Tensor] = {}
        if missing:
            with torch.no_grad():  # fp32 whatever the autocast: BatchNorm recalibration runs FD without autocast
                fresh = face_encoder.features(target[missing]).float()
            for i, row in zip(missing, fresh):
                computed[keys[i]] = row
                if len(feature_cache) < cache_limit:
                    feature_cache[keys[i]] = row
        return torch.stack([computed[key] if key in computed else feature_cache[key] for key in keys])

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        target = batch["face"].to(device, non_blocking=True)
        if "feature" in batch:
            feature = batch["feature"].to(device, non_blocking=True)
        else:
            feature = corpus_features(list(batch["key"]), target)
        recon = net(feature)
        recon_feature = face_encoder.features(recon) if use_cos else None
        loss, parts = criterion(recon, target, recon_feature, feature if use_cos else None)
        return loss, {k: float(v) for k, v in parts.items() if k != "total"}

    run_id = fingerprint({"params": params, "config": config})
    history = fit(model, dataset, step, params, out, plots_dir, run_id, "train_decoder", device)
    metrics = {**summary_metrics(history), "feature_dim": dim, "image_size": image_size, "faces": faces,
               **run_settings(params)}
    # after the metrics: a run that fails there saves no model
    save_final(out, model, ARCH_DECODER, config, {"feature_relu": feature_relu(features_dir), "history": history})
    if current().main:
        write_json(metrics_path, metrics)
    return metrics
