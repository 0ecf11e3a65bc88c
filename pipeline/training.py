"""Training loops of the face decoder (FD) and the speech encoder (SE) variants (docs/design.md, Fidelity to the paper).

Both loops share the paper's recipe: Adam (β1 from params, β2 0.999, ε from params), the learning rate decayed
×``lr_decay`` every ``lr_decay_every`` epochs, seeded shuffles, frozen helper networks in eval mode. Each epoch
the loop logs the mean loss and its parts with dvclive (TSV curves under the stage's plots directory, read by
``dvc plots``) and saves a resume state (model + optimizer + scheduler + epoch + history) next to the output,
so an interrupted run continues from its last finished epoch; the state is deleted once the final checkpoint
is written.

Variants (paper Table 4): ``non_prior`` (no prior), ``neutral``/``neutral_fc`` (neutral prior, sum/fc fusion),
``gender``/``gender_fc`` (male or female prior chosen per sample by the voice gender classifier's prediction)
and ``male``/``female`` (one gender's data only, that gender's prior, sum fusion). A sample's gender for the
male/female subsets is its label when the dataset has one, else the classifier's prediction.
"""
from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm import tqdm

from pipeline.distributed import current
from pipeline.io import atomic_path, dumps_json, write_json


class TrainingError(ValueError):
    """Training cannot start or produced nothing (bad variant, empty split, mismatched inputs)."""


@dataclass(frozen=True)
class Variant:
    """How one Table 4 variant builds its final feature and which samples it trains and tests on."""

    name: str
    fusion: str  # none | sum | fc (models.encoder.SpeechEncoder)
    prior: str | None  # None | neutral | gender | male | female
    subset: str | None  # None (all samples) | M | F


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("non_prior", "none", None, None),
        Variant("neutral", "sum", "neutral", None),
        Variant("neutral_fc", "fc", "neutral", None),
        Variant("gender", "sum", "gender", None),
        Variant("gender_fc", "fc", "gender", None),
        Variant("male", "sum", "male", "M"),
        Variant("female", "sum", "female", "F"),
    )
}

ARCH_FACE_ENCODER = "vggface"
ARCH_DECODER = "face_decoder"
ARCH_ENCODER = "speech_encoder"


def get_variant(name: str) -> Variant:
    """The variant called ``name`` or a TrainingError listing the valid names."""
    if name not in VARIANTS:
        raise TrainingError(f"unknown variant '{name}' (valid: {', '.join(VARIANTS)})")
    return VARIANTS[name]


# ----------------------------------------------------------------------------------------------- inputs


def load_priors(priors_dir: str | Path, dim: int, needed: tuple[str, ...] = ("neutral",)) -> dict[str, np.ndarray]:
    """The float32 ``[dim]`` priors of ``priors.npz`` (``neutral``/``male``/``female``), checked against ``dim``.

    Every prior in ``needed`` must be present and ``dim``-d; a prior outside ``needed`` that is empty (no
    training sample of that gender) is left out, one of another non-zero size is still an error.
    """
    path = Path(priors_dir) / "priors.npz" if Path(priors_dir).is_dir() else Path(priors_dir)
    if not path.is_file():
        raise TrainingError(f"priors file {path} not found (run the priors stage first)")
    with np.load(path, allow_pickle=False) as data:
        found = {name: np.asarray(data[name], dtype=np.float32).reshape(-1) if np.ndim(data[name]) <= 1
                 else np.asarray(data[name], dtype=np.float32) for name in ("neutral", "male", "female")
                 if name in data}
    priors = {}
    for name, prior in found.items():
        if prior.size == 0 and name not in needed:
            continue
        if prior.shape != (dim,):
            raise TrainingError(
                f"the {name} prior has shape {prior.shape} but the face features are {dim}-d"
                + (" (no training sample of that gender?)" if prior.size == 0 else
                   " (priors and features come from different runs?)"))
        priors[name] = prior
    missing = [name for name in needed if name not in priors]
    if missing:
        raise TrainingError(f"priors file {path} has no {', '.join(missing)} prior")
    return priors


def priors_needed(variant: Variant) -> tuple[str, ...]:
    """Names of the priors a variant uses."""
    if variant.prior is None:
        return ()
    return ("male", "female") if variant.prior == "gender" else (variant.prior,)


def load_gender_predictions(gender_dir: str | Path) -> dict[str, tuple[str | None, str | None]]:
    """``key -> (label or None, predicted 'M'|'F' or None)`` from ``predictions.parquet``.

    A missing prediction (no classifier was trained) stays None, never the string ``"None"``."""
    import pyarrow.parquet as pq

    path = Path(gender_dir) / "predictions.parquet" if Path(gender_dir).is_dir() else Path(gender_dir)
    if not path.is_file():
        raise TrainingError(f"gender predictions {path} not found (run the gender stage first)")
    table = pq.read_table(path, columns=["key", "label", "pred"]).to_pydict()
    return {
        str(k): (lab if lab in ("M", "F") else None, pred if pred in ("M", "F") else None)
        for k, lab, pred in zip(table["key"], table["label"], table["pred"])
    }


def sample_gender(meta: dict, predictions: dict[str, tuple[str | None, str | None]]) -> str | None:
    """A sample's gender: its label when known, else the voice classifier's prediction, else None."""
    label = meta.get("gender")
    if label in ("M", "F"):
        return label
    entry = predictions.get(str(meta.get("key")))
    if entry is None:
        return None
    return entry[0] or entry[1]


def subset_filter(variant: Variant, predictions: dict) -> Callable[[dict], bool] | None:
    """The ``keep(meta)`` predicate of a one-gender variant (None for variants that use every sample)."""
    if variant.subset is None:
        return None
    wanted = variant.subset
    return lambda meta: sample_gender(meta, predictions) == wanted


class PriorSelector:
    """Builds the ``[B, D]`` prior tensor of a batch for a variant (None for ``non_prior``)."""

    def __init__(self, variant: Variant, priors: dict[str, np.ndarray] | None, predictions: dict | None,
                 device: torch.device):
        self.variant = variant
        self.predictions = predictions or {}
        self.tensors = {k: torch.from_numpy(v).to(device) for k, v in (priors or {}).items()}
        if variant.prior is not None and not self.tensors:
            raise TrainingError(f"variant '{variant.name}' needs priors")

    def __call__(self, keys: list[str]) -> torch.Tensor | None:
        kind = self.variant.prior
        if kind is None:
            return None
        if kind in ("neutral", "male", "female"):
            return self.tensors[kind].unsqueeze(0).expand(len(keys), -1)
        rows = []
        for key in keys:
            entry = self.predictions.get(key)
            if entry is None:
                raise TrainingError(f"sample {key} has no gender prediction (rerun the gender stage)")
            rows.append(self.tensors["male" if entry[1] == "M" else "female"])
        return torch.stack(rows)


def load_frozen(path: str | Path, arch: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint as a frozen module (eval mode, no parameter gradients)."""
    from pipeline.checkpoints import load_checkpoint

    if not Path(path).is_file():
        raise TrainingError(f"checkpoint {path} not found")
    model, header = load_checkpoint(path, arch)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, header


def load_face_encoder(path: str | Path, features_dir: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The frozen face encoder, set to give the kind of fc7 feature (pre/post-ReLU) that ``features_dir`` holds.

    Its fc7 feature (FD's cosine term, Face-to-Face retrieval) and its fc8 logits (the tri-item loss, which add
    fc7's ReLU only to pre-ReLU features) then compare like with like, whatever the checkpoint was saved with.
    """
    from pipeline.feature_files import feature_relu

    model, header = load_frozen(path, ARCH_FACE_ENCODER, device)
    model.fc7_relu = feature_relu(features_dir)
    return model, header


def check_feature_kind(header: dict, path: str | Path, features_dir: str | Path) -> None:
    """Refuse a decoder or encoder checkpoint trained on the other kind of fc7 feature than ``features_dir``'s."""
    from pipeline.feature_files import feature_kind, feature_relu

    trained = header.get("feature_relu")
    relu = feature_relu(features_dir)
    if trained is not None and bool(trained) != relu:
        raise TrainingError(f"{path} was trained on {feature_kind(bool(trained))} face features but {features_dir} "
                            f"holds {feature_kind(relu)} ones (features.fc7_relu changed: rerun the stages after "
                            f"features)")


def peek_image_size(dataset) -> int:
    """Side of the face crops of a split (from its first sample)."""
    for item in dataset:
        return int(item["face"].shape[-1])
    raise TrainingError(f"split '{dataset.split}' has no samples")


# ----------------------------------------------------------------------------------------------- the loop


def make_optimizer(model: torch.nn.Module, params: dict[str, Any]):
    """Adam(lr, (β1, 0.999), eps) and StepLR(lr_decay_every, lr_decay), as in the paper.

    Adam is PyTorch's fused implementation on CPU and CUDA: one kernel for all parameters instead of several per
    tensor, 7.9 → 1.7 ms per step for the face decoder's 255 tensors on this CPU (a tenth of its training step).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = bool(trainable) and all(p.device.type in ("cpu", "cuda") for p in trainable)
    optimizer = torch.optim.Adam(
        trainable,
        lr=float(params["lr"]),
        betas=(float(params["beta1"]), 0.999),
        eps=float(params["eps"]),
        fused=fused or None,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=int(params["lr_decay_every"]), gamma=float(params["lr_decay"])
    )
    return optimizer, scheduler


def resume_path_for(out: str | Path) -> Path:
    """Where the resume state of a run writing ``out`` lives (a hidden file beside it)."""
    out = Path(out)
    return out.with_name(f".{out.name}.resume")


def fingerprint(obj: Any) -> str:
    """A short hash of a JSON-able configuration (so a resume state from other params is ignored)."""
    return hashlib.sha256(dumps_json(obj).encode("utf-8")).hexdigest()[:16]


def _open_live(plots_dir: str | Path):
    from dvclive import Live

    # dvcyaml=None / save_dvc_exp=False: the stage must not rewrite dvc.yaml or create experiments.
    return Live(dir=str(plots_dir), save_dvc_exp=False, dvcyaml=None, report=None)


#: ``precision`` params values → the autocast dtype (None: full fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(params: dict[str, Any]) -> torch.dtype | None:
    """The autocast dtype of ``params['precision']`` (default fp32: none); TrainingError for an unknown one."""
    precision = str(params.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise TrainingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def fit(
    model: torch.nn.Module,
    dataset,
    step: Callable[[dict, torch.nn.Module], tuple[torch.Tensor, dict[str, float]]],
    params: dict[str, Any],
    out: str | Path,
    plots_dir: str | Path,
    run_fingerprint: str,
    desc: str,
    device: torch.device | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``params['epochs']`` epochs over ``dataset``; returns per-epoch mean losses.

    ``step(batch, net)`` runs ``net`` (the model, or its DistributedDataParallel wrapper under torchrun) and
    returns the batch loss (with graph) and its parts as floats; it runs under autocast when
    ``params['precision']`` is bf16 or fp16 (fp16 with a GradScaler; the losses keep their image terms in fp32).
    ``params['num_workers']`` loader processes read the shards (each its own shards); batches are pinned for
    non-blocking copies when ``device`` is CUDA. Resumes from the state beside ``out`` when it matches
    ``run_fingerprint``; writes one dvclive step per epoch. After the last epoch the BatchNorm running statistics
    are recomputed from the final weights (``recalibrate_batchnorm``).
    """
    from pipeline import distributed
    from pipeline.datasets import make_loader
    from pipeline.metrics import RunningMean

    device = device if device is not None else torch.device("cpu")
    rank = distributed.setup(device)
    amp_dtype = autocast_dtype(params)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    optimizer, scheduler = make_optimizer(model, params)
    epochs = int(params["epochs"])
    resume = resume_path_for(out)
    history: list[dict[str, float]] = []
    start = 0
    if resume.is_file():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == run_fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            start = int(state["epoch"])
            history = [dict(h) for h in state["history"]]
            print(f"resuming {desc} from epoch {start} ({resume.name})", file=sys.stderr)
        else:
            print(f"ignoring {resume.name}: written with other params", file=sys.stderr)
    live = _open_live(plots_dir) if rank.main else None  # rank 0 alone writes curves, resume state, checkpoints
    for row in history if live is not None else ():  # replay finished epochs: complete curves after a resume
        _log_epoch(live, row)
    workers = int(params.get("num_workers", 0))
    net = model
    if rank.distributed:
        if workers:
            raise TrainingError(f"{desc}: num_workers must be 0 when nproc > 1 (a rank's stride of the samples is "
                                f"taken in the training process)")
        dataset.split_for_rank(rank.rank, rank.world_size)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    shards = len(getattr(dataset, "shard_paths", ()) or ())
    if shards and workers > shards:
        raise TrainingError(f"{desc}: num_workers {workers} is more than the split's {shards} shard(s), and each "
                            f"worker reads whole shards, so {workers - shards} would read nothing; use at most "
                            f"{shards}")
    loader = make_loader(dataset, int(params["batch_size"]), workers, pin_memory=device.type == "cuda")
    bar = tqdm(range(start, epochs), desc=desc, unit="epoch", file=sys.stderr, initial=start, total=epochs,
               disable=not rank.main)
    for epoch in bar:
        model.train()
        dataset.set_epoch(epoch)
        running = RunningMean()
        skipped = 0
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, file=sys.stderr,
                          disable=not rank.main):
            n = len(batch["key"])
            if n < 2:  # BatchNorm cannot train on a single sample; the last tiny batch is skipped
                skipped += n
                continue
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss, parts = step(batch, net)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            running.update({"loss": float(loss.detach()), **parts}, n)
        if running.count == 0:
            if skipped:
                raise TrainingError(f"{desc}: only {skipped} training sample, and BatchNorm needs batches of 2 or "
                                    f"more (add data, or drop this variant)")
            raise TrainingError(f"{desc}: no training samples (empty split or subset)")
        row = {"epoch": epoch + 1, "lr": float(optimizer.param_groups[0]["lr"]), "samples": running.count,
               **running.means()}
        if rank.distributed:  # epoch means over every rank's samples (each rank holds only its own sums)
            names = sorted(k for k in row if k not in ("epoch", "lr", "samples"))
            summed = distributed.all_sum([running.count] + [row[k] * running.count for k in names], device)
            row.update(samples=int(summed[0]), **{k: v / summed[0] for k, v in zip(names, summed[1:])})
        scheduler.step()
        history.append(row)
        if rank.main:
            _log_epoch(live, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            with atomic_path(resume) as tmp:
                torch.save({"fingerprint": run_fingerprint, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                            "epoch": epoch + 1, "history": history}, tmp)
    # Running BatchNorm statistics from the final weights (see recalibrate_batchnorm), in a fixed order, over the
    # whole split, by rank 0 alone: only its checkpoint is written.
    if rank.main:
        dataset.split_for_rank(0, 1)
        dataset.set_epoch(epochs)
        recalibrate_batchnorm(model, make_loader(dataset, int(params["batch_size"]), workers),
                              lambda batch: step(batch, model))
    if live is not None:
        live.end()
    return history


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> int:
    """Recompute every BatchNorm's running mean/variance of ``model`` as exact averages over ``batches``.

    During training the running statistics are exponential averages (momentum 0.1) of batch statistics taken
    while the weights were still moving fast; with the demo's few hundred steps they lag the final weights
    so much that eval mode (which uses them) differs wildly from train mode (the voice gender classifier fell
    from 0.99 to 0.68 train accuracy). One extra no-grad pass with the final weights in train mode and a
    cumulative average (``momentum=None``) fixes that, as ``torch.optim.swa_utils.update_bn`` does; frozen
    helper modules stay in eval mode. ``forward(batch)`` runs the model on one batch (batches of fewer than
    two samples are skipped, like in training). Returns the number of batches used; the model is left in
    eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    for batch in batches:
        if _batch_len(batch) < 2:
            continue
        forward(batch)
        used += 1
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.eval()
    return used


def _batch_len(batch: Any) -> int:
    if isinstance(batch, dict) and "key" in batch:
        return len(batch["key"])
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 2


def _log_epoch(live, row: dict[str, float]) -> None:
    for name, value in sorted(row.items()):
        if name in ("epoch", "samples"):
            continue
        live.log_metric(name if name == "lr" else f"train/{name}", float(value))
    live.next_step()


def _summary_metrics(history: list[dict[str, float]]) -> dict[str, Any]:
    last = history[-1]
    return {
        "epochs": len(history),
        "samples_per_epoch": int(last["samples"]),
        "first_epoch_loss": float(history[0]["loss"]),
        "final": {k: float(v) for k, v in last.items() if k not in ("epoch", "samples")},
        "loss_curve": [float(h["loss"]) for h in history],
    }


def _run_settings(params: dict[str, Any]) -> dict[str, Any]:
    """How the run was executed (metrics): precision, loader processes and data-parallel processes."""
    return {"precision": str(params.get("precision", "fp32")), "num_workers": int(params.get("num_workers", 0)),
            "world_size": current().world_size}


def _finish(out: str | Path, model, arch: str, config: dict, extra: dict) -> None:
    """Rank 0 saves the checkpoint and removes the resume state (other ranks hold the same weights)."""
    from pipeline.checkpoints import save_checkpoint

    if not current().main:
        return
    save_checkpoint(out, model.cpu(), arch, config, extra)
    resume = resume_path_for(out)
    if resume.exists():
        resume.unlink()


# ----------------------------------------------------------------------------------------------- decoder


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
      trained on AVSpeech's face crops).
    """
    from models import build_model
    from models.losses import DecoderLoss
    from pipeline.datasets import SplitDataset
    from pipeline.device import resolve_device, seed_everything
    from pipeline.distributed import rank_device
    from pipeline.feature_files import feature_dim, feature_relu

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
    else:
        raise TrainingError(f"train_decoder.faces must be 'corpus' or 'shards', got {faces!r}")
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
            with torch.no_grad():
                fresh = face_encoder.features(target[missing])
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
    _finish(out, model, ARCH_DECODER, config, {"feature_relu": feature_relu(features_dir), "history": history})
    metrics = {**_summary_metrics(history), "feature_dim": dim, "image_size": image_size, "faces": faces,
               **_run_settings(params)}
    if current().main:
        write_json(metrics_path, metrics)
    return metrics


# ----------------------------------------------------------------------------------------------- encoder


def train_encoder(variant_name: str, shards_dir: str | Path, features_dir: str | Path,
                  priors_dir: str | Path, gender_dir: str | Path, decoder_path: str | Path,
                  face_encoder_path: str | Path, out: str | Path, metrics_path: str | Path,
                  plots_dir: str | Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train SE for one variant with the tri-item loss; FD and the face encoder are frozen."""
    from models import build_model
    from models.losses import tri_item_loss
    from pipeline.datasets import SplitDataset, spec_batch
    from pipeline.device import resolve_device, seed_everything
    from pipeline.distributed import rank_device
    from pipeline.feature_files import feature_dim, feature_relu

    variant = get_variant(variant_name)
    device = rank_device(resolve_device(params.get("device", "auto")))  # cuda:<LOCAL_RANK> under torchrun
    seed_everything(int(params["seed"]))
    dim = feature_dim(features_dir)
    priors = load_priors(priors_dir, dim, priors_needed(variant)) if variant.prior is not None else None
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

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        true = batch["feature"].to(device, non_blocking=True)
        speech = net(spec_batch(batch, device, channels_last=True), select_prior(batch["key"]))
        loss, parts = tri_item_loss(true, speech, decoder.fc1, face_encoder.classify, lambdas)
        return loss, {k: float(v) for k, v in parts.items() if k != "total"}

    run_id = fingerprint({"params": params, "config": config, "variant": variant.name})
    history = fit(model, dataset, step, params, out, plots_dir, run_id, f"train_encoder[{variant.name}]", device)
    _finish(out, model, ARCH_ENCODER, config,
            {"variant": variant.name, "prior": variant.prior, "subset": variant.subset,
             "feature_relu": feature_relu(features_dir), "history": history})
    metrics = {**_summary_metrics(history), "variant": variant.name, "feature_dim": dim, **_run_settings(params)}
    if current().main:
        write_json(metrics_path, metrics)
    return metrics


def project_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input (one clear line for the user), not a bug (a traceback)."""
    from models import ModelConfigError
    from pipeline.checkpoints import CheckpointError
    from pipeline.datasets import DatasetError
    from pipeline.distributed import DistributedError
    from pipeline.feature_files import FeaturesError
    from pipeline.media import MediaError
    from pipeline.params import ParamsError
    from pipeline.shards import ShardError

    return (TrainingError, ModelConfigError, CheckpointError, DatasetError, DistributedError, FeaturesError,
            MediaError, ParamsError, ShardError, FileNotFoundError)


def run_main(body: Callable[[], str], extra_errors: tuple[type[BaseException], ...] = ()) -> int:
    """Run a stage body; print its summary line, or ``error: <one sentence>`` and return 2 on bad input."""
    errors = project_errors() + tuple(extra_errors)
    try:
        summary = body()
        if current().main:  # under torchrun every rank runs the body; one summary line
            print(summary)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def elapsed(start: float) -> str:
    """Seconds since ``start`` as text, for the stages' summary lines."""
    return f"{time.perf_counter() - start:.1f}s"
