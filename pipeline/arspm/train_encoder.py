"""Train the speech encoder SE of one Table 4 variant with the tri-item loss; FD and the face encoder are frozen
(docs/design.md, Fidelity to the paper). The loop is the one every model uses (``pipeline.training.loop.fit``); the
variants are in ``pipeline.arspm.variants``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from models.decoder import ARCH as ARCH_DECODER
from models.encoder import ARCH as ARCH_ENCODER
from pipeline.arspm.variant_inputs import PriorSelector, load_gender_predictions, load_variant_priors, subset_filter
from pipeline.arspm.variants import get_variant, priors_needed
from pipeline.common.errors import TrainingError
from pipeline.common.io import write_json
from pipeline.training.distributed import current
from pipeline.training.frozen import check_feature_kind, load_face_encoder, load_frozen
from pipeline.training.loop import fingerprint, fit, run_settings, save_final, summary_metrics


def train_encoder(variant_name: str, shards_dir: str | Path, features_dir: str | Path,
                  priors_dir: str | Path, gender_dir: str | Path, decoder_path: str | Path,
                  face_encoder_path: str | Path, out: str | Path, metrics_path: str | Path,
                  plots_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train SE for one variant with the tri-item loss; FD and the face encoder are frozen."""
    from models import build_model
    from models.losses import tri_item_loss
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.datasets import SplitDataset, spec_batch
    from pipeline.data.feature_files import feature_dim, feature_relu
    from pipeline.training.distributed import rank_device

    variant = get_variant(variant_name)
    device = rank_device(resolve_device(params.get("device", "auto")))  # cuda:<LOCAL_RANK> under torchrun
    seed_everything(int(params["seed"]))
    dim = feature_dim(features_dir)
    priors = load_variant_priors(priors_dir, dim, priors_needed(variant)) if variant.prior is not None else None
    predictions = load_gender_predictions(gender_dir) if (variant.prior == "gender" or variant.subset) else {}
    face_encoder, _ = load_face_encoder(face_encoder_path, features_dir, device)
    decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, device)
    check_feature_kind(decoder_header, decoder_path, features_dir)
    decoder_dim = int(decoder_header["config"]["feature_dim"])
    if decoder_dim != dim:
        raise TrainingError(f"decoder {decoder_path} takes {decoder_dim}-d features but the features are {dim}-d")
    dataset = SplitDataset(shards_dir, "train", fields=("spec", "meta"), features_dir=features_dir,
                           shuffle=True, seed=int(params["seed"]), keep=subset_filter(variant, predictions))
    config = {"feature_dim": dim, "width": float(params["width"]), "fusion": variant.fusion, "use_cbam": True}
    # NHWC: the speech encoder's convolutions on (257 x 598) spectrograms run 1.6-1.8x faster so (on CPU and GPU)
    model = build_model(ARCH_ENCODER, config).to(device, memory_format=torch.channels_last)
    select_prior = PriorSelector(variant, priors, predictions, device)
    lambdas = tuple(float(x) for x in params["lambdas"])
    augment = spec_augmenter(params, dataset)

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        true = batch["feature"].to(device, non_blocking=True)
        speech = net(augment(spec_batch(batch, device, channels_last=True)), select_prior(batch["key"]))
        loss, parts = tri_item_loss(true, speech, decoder.fc1, face_encoder.classify, lambdas)
        return loss, {k: float(v) for k, v in parts.items() if k != "total"}

    run_id = fingerprint({"params": params, "config": config, "variant": variant.name})
    # BatchNorm statistics are recomputed from plain (not augmented) spectrograms, as the model sees at test time
    history = fit(model, dataset, step, params, out, plots_dir, run_id, f"train_encoder[{variant.name}]", device,
                  bn_forward=lambda batch: model(spec_batch(batch, device, channels_last=True),
                                                 select_prior(batch["key"])))
    metrics = {**summary_metrics(history), "variant": variant.name, "feature_dim": dim, **run_settings(params)}
    save_final(out, model, ARCH_ENCODER, config,  # after the metrics: a run that fails there saves no model
               {"variant": variant.name, "prior": variant.prior, "subset": variant.subset,
                "feature_relu": feature_relu(features_dir), "history": history})
    if current().main:
        write_json(metrics_path, metrics)
    return metrics


def spec_augmenter(params: dict[str, Any], dataset) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training-time spectrogram augmentation of ``params`` (``time_masks`` masks of up to
    ``time_mask_frames`` frames, ``time_roll``), or the identity when both are off.

    Its generator is reseeded from ``seed``, the epoch of ``dataset`` and the rank at the start of each epoch, so
    a resumed run augments as an unbroken one and every rank draws its own masks.
    """
    from pipeline.training.augment import mask_and_roll_time

    masks, max_frames = int(params.get("time_masks", 0)), int(params.get("time_mask_frames", 0))
    roll = bool(params.get("time_roll", False))
    if masks < 0 or max_frames < 0:
        raise TrainingError(f"train_encoder.time_masks and time_mask_frames must be 0 (off) or more, got {masks} and "
                            f"{max_frames}")
    if not roll and (masks <= 0 or max_frames <= 0):
        return lambda specs: specs
    seed, rank = int(params["seed"]), current().rank
    state = {"epoch": None, "generator": torch.Generator()}

    def augment(specs: torch.Tensor) -> torch.Tensor:
        if state["epoch"] != dataset.epoch:
            state["epoch"] = dataset.epoch
            state["generator"].manual_seed((seed * 1_000_003 + dataset.epoch) * 1_009 + rank)
        out = mask_and_roll_time(specs, masks, max_frames, roll, state["generator"])
        return out.contiguous(memory_format=torch.channels_last)

    return augment
