"""The ``face_encoder`` stage: the face-feature network (VGGFace), pretrained or trained on the shards.

- ``source: pretrained`` (the paper): the converted Oxford ``vgg_face_dag.pth`` from a path or an http(s) URL
  (downloaded once into a cache directory with a progress bar), verified by its SHA-256 before anything is
  unpickled, loaded into ``models.vggface.VGGFace`` and saved as our checkpoint. The architecture (width,
  fc width, classes, input size) is read from the weights' shapes, so the real file gives the paper's
  224x224 / 4096 / 2622 network; the shards' face crops must have the size the weights expect.
- ``source: train`` (the offline default): the same architecture trained from scratch as an identity classifier
  on the train split's face crops (identity = ``speaker_id``, else ``video_id``), as VGGFace itself was trained:
  cross-entropy, Adam, light augmentation (random shifts, flips, brightness). One clip per identity that has
  several is held out to measure identity accuracy on unseen clips.
"""
from __future__ import annotations

import os
import shutil
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from pipeline.common.errors import PipelineError
from pipeline.common.io import file_sha256

PAPER_IMAGE_SIZE = 224


class FaceEncoderError(PipelineError, ValueError):
    """The face encoder cannot be built as configured (weights, checksum, sizes, data)."""


# ------------------------------------------------------------------------------------------- pretrained

def cache_dir() -> Path:
    """Where downloaded weights are kept: ``$SPEECH2FACE_CACHE`` or ``~/.cache/speech2face``, ``/weights``."""
    root = os.environ.get("SPEECH2FACE_CACHE") or str(Path.home() / ".cache" / "speech2face")
    return Path(root) / "weights"


def fetch_weights(source: str, sha256: str, cache: Path | None = None, timeout: float = 60.0) -> Path:
    """A local path to the weights: ``source`` itself, or its download (cached by checksum) for http(s) URLs.

    The checksum is required and verified here; a download that does not match is deleted.
    """
    expected = (sha256 or "").strip().lower()
    if not source:
        raise FaceEncoderError("face_encoder.source is 'pretrained' but face_encoder.weights is empty "
                               "(give a path or URL of vgg_face_dag.pth)")
    if not expected:
        raise FaceEncoderError("face_encoder.sha256 is empty: pretrained weights are only used with a pinned "
                               "SHA-256 checksum")
    if not source.startswith(("http://", "https://")):
        path = Path(source)
        if not path.is_file():
            raise FaceEncoderError(f"VGGFace weights file {path} not found")
        actual = file_sha256(path)
        if actual != expected:
            raise FaceEncoderError(f"VGGFace weights {path} have SHA-256 {actual}, expected {expected}")
        return path
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"{expected}.pth"
    if target.is_file() and file_sha256(target) == expected:
        return target
    partial = cache / f"{expected}.pth.part"
    try:
        with urllib.request.urlopen(source, timeout=timeout) as response, open(partial, "wb") as fh:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="VGGFace weights") as bar:
                while True:
                    block = response.read(1 << 20)
                    if not block:
                        break
                    fh.write(block)
                    bar.update(len(block))
    except OSError as exc:  # URLError, HTTPError, timeouts are all OSErrors
        partial.unlink(missing_ok=True)
        raise FaceEncoderError(f"could not download VGGFace weights from {source}: {exc}") from exc
    actual = file_sha256(partial)
    if actual != expected:
        partial.unlink(missing_ok=True)
        raise FaceEncoderError(f"downloaded VGGFace weights from {source} have SHA-256 {actual}, "
                               f"expected {expected}")
    shutil.move(partial, target)
    return target


def vggface_config_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """VGGFace constructor arguments that fit a ``vgg_face_dag`` state dict (width, fc_dim, classes, size)."""
    try:
        conv1 = state["conv1_1.weight"].shape[0]
        conv5 = state["conv5_3.weight"].shape[0]
        fc_in, fc_dim = state["fc6.weight"].shape[1], state["fc6.weight"].shape[0]
        num_classes = state["fc8.weight"].shape[0]
    except KeyError as exc:
        raise FaceEncoderError(f"weights lack {exc.args[0]}: not the vgg_face_dag layout") from exc
    side = int(round((fc_in / conv5) ** 0.5))
    if side * side * conv5 != fc_in:
        raise FaceEncoderError(f"fc6 input {fc_in} is not conv5 channels {conv5} times a square map")
    return {"width": conv1 / 64.0, "image_size": side * 32, "fc_dim": int(fc_dim), "num_classes": int(num_classes)}


def build_pretrained(weights: str, sha256: str, image_size: int, fc7_relu: bool = True) -> tuple[nn.Module, dict]:
    """Verified, loaded VGGFace from pretrained weights; returns ``(model, config)``."""
    from models.vggface import VGGFace, VGGFaceWeightsError, load_vggface_weights

    path = fetch_weights(weights, sha256)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise FaceEncoderError(f"VGGFace weights {path} are not a plain tensor state dict") from exc
    if not isinstance(state, Mapping):
        raise FaceEncoderError(f"VGGFace weights {path} are not a state dict")
    config = vggface_config_from_state(state)
    del state
    if config["image_size"] != int(image_size):
        raise FaceEncoderError(
            f"pretrained VGGFace needs {config['image_size']}x{config['image_size']} face crops but the shards "
            f"have {image_size}x{image_size}: set preprocess.image_size: {config['image_size']} (the paper's "
            f"{PAPER_IMAGE_SIZE}) or use face_encoder.source: train")
    config["fc7_relu"] = bool(fc7_relu)
    model = VGGFace(**config)
    try:
        load_vggface_weights(model, path, sha256)
    except VGGFaceWeightsError as exc:
        raise FaceEncoderError(str(exc)) from exc
    return model, config


# ------------------------------------------------------------------------------------------- train

def identity_of(meta: Mapping[str, Any]) -> str:
    """The identity a face belongs to: its speaker, or its video when speakers are unknown."""
    return str(meta.get("speaker_id") or meta.get("video_id") or meta.get("key"))


def plan_identities(shards_dir: str | Path, seed: int,
                    check: Callable[[Mapping[str, Any], str], None] | None = None,
                    ) -> tuple[list[str], dict[str, int], set[str]]:
    """Train identities (sorted), ``key -> class index``, and one held-out key per identity with >= 2 clips.

    ``check(meta, shard_name)`` may reject an image's meta (e.g. the face corpus's ``check_corpus_meta``).
    """
    from pipeline.data.shards import iter_samples, list_shards

    by_identity: dict[str, list[str]] = defaultdict(list)
    for shard in list_shards(shards_dir, "train"):
        for sample in iter_samples([shard], fields=["meta"]):
            if check is not None:
                check(sample["meta"], str(shard))
            by_identity[identity_of(sample["meta"])].append(sample["key"])
    identities = sorted(by_identity)
    rng = np.random.default_rng(int(seed))
    key_class: dict[str, int] = {}
    heldout: set[str] = set()
    for index, identity in enumerate(identities):
        keys = sorted(by_identity[identity])
        for key in keys:
            key_class[key] = index
        if len(keys) >= 2:
            heldout.add(keys[int(rng.integers(len(keys)))])
    return identities, key_class, heldout


def init_vgg_(model: nn.Module) -> None:
    """He init for convolutions, small normal for fc (torchvision's VGG init): a plain 16-layer VGG without
    BatchNorm does not train from PyTorch's default init."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shift (pad + crop), horizontal flip and brightness of a ``(B,3,H,W)`` batch in [0, 1]."""
    from pipeline.training.augment import random_shift

    b, _, h, _ = images.shape
    out = random_shift(images, max(2, h // 16), generator)
    flip = torch.rand(b, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    # Mild (±5 %): skin tones a step apart differ by about 10 % in brightness, and skin is part of identity.
    brightness = 0.95 + 0.1 * torch.rand(b, 1, 1, 1, generator=generator)
    return (out * brightness).clamp_(0.0, 1.0)


@torch.no_grad()
def identity_accuracy(model: nn.Module, loader, key_class: Mapping[str, int], device: torch.device) -> float | None:
    """Top-1 identity accuracy over a loader's samples (eval mode); None when it yields nothing."""
    model.eval()
    correct = seen = 0
    for batch in loader:
        _, logits = model(batch["face"].to(device))
        target = torch.tensor([key_class[k] for k in batch["key"]], device=device)
        correct += int((logits.argmax(1) == target).sum())
        seen += len(target)
    return correct / seen if seen else None


class IdentityAndAttributes(nn.Module):
    """VGGFace with, while it trains, one linear head per face-corpus attribute on its fc7 feature (``heads``
    None: identity only). Returns ``(identity logits, {attribute: logits})``."""

    def __init__(self, vgg: nn.Module, heads: nn.ModuleDict | None):
        super().__init__()
        self.vgg = vgg
        self.heads = heads

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feature, logits = self.vgg(images)
        return logits, ({name: head(feature) for name, head in self.heads.items()} if self.heads is not None else {})


def _has_attributes(dataset) -> bool:
    from pipeline.data.attributes import ATTRIBUTES

    for sample in dataset:
        return all(name in sample["meta"] for name in ATTRIBUTES)
    return False


def train_face_encoder(shards_dir: str | Path, params: Mapping[str, Any], image_size: int, out: str | Path,
                       plots_dir: str | Path, check: Callable[[Mapping[str, Any], str], None] | None = None,
                       ) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Train VGGFace as an identity classifier on the ``train`` images of ``shards_dir`` (the face corpus, or
    preprocessed shards) with the training loop every model uses (``pipeline.training.loop.fit``: resume state beside
    ``out``, curves under ``plots_dir``, DDP under torchrun); returns ``(model, config, metrics)``. ``check``
    validates each image's meta. One image per identity with two or more is held out to measure it.

    With ``attribute_weight`` > 0 and images whose meta carries the face corpus's attributes, one linear head per
    attribute on the fc7 feature is trained alongside (loss = identity CE + weight x the attributes' CE), and
    dropped afterwards: the feature then encodes what the corpus's faces vary in (gender, age, skin, hair,
    glasses, beard) as a VGGFace trained on thousands of real identities does, while the demo's few hundred
    near-identical synthetic identities alone teach it slowly.
    """
    from models.vggface import VGGFace
    from pipeline.common.device import resolve_device, seed_everything
    from pipeline.data.attributes import ATTRIBUTES
    from pipeline.data.datasets import SplitDataset, make_loader
    from pipeline.training.distributed import current, rank_device
    from pipeline.training.loop import fingerprint, fit, run_settings

    seed = int(params["seed"])
    device = rank_device(resolve_device(str(params["device"])))  # cuda:<LOCAL_RANK> under torchrun
    identities, key_class, heldout = plan_identities(shards_dir, seed, check)
    if len(identities) < 2:
        raise FaceEncoderError(f"training a face encoder needs at least 2 train identities, found "
                               f"{len(identities)}")
    seed_everything(seed)
    config = {"width": float(params["width"]), "image_size": int(image_size), "fc_dim": int(params["fc_dim"]),
              "num_classes": len(identities), "fc7_relu": True, "dropout": float(params["dropout"]),
              "batch_norm": bool(params["batch_norm"])}
    vgg = VGGFace(**config)
    init_vgg_(vgg)
    train_set = SplitDataset(shards_dir, "train", fields=("face", "meta"), shuffle=True, seed=seed,
                             buffer_size=1000, keep=lambda meta: meta.get("key") not in heldout)
    attribute_weight = float(params["attribute_weight"])
    heads = (nn.ModuleDict({name: nn.Linear(config["fc_dim"], len(classes)) for name, classes in ATTRIBUTES.items()})
             if attribute_weight > 0 and _has_attributes(train_set) else None)
    # NHWC: measured 1.6-2.1x for VGGFace's fwd+bwd at paper size (bench_models.py), about even at the demo's size
    model = IdentityAndAttributes(vgg, heads).to(device, memory_format=torch.channels_last)
    augmenting = {"epoch": -1, "generator": torch.Generator()}

    def step(batch: dict, net: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        if augmenting["epoch"] != train_set.epoch:  # seeded per epoch, so a resumed run augments as an unbroken one
            augmenting["epoch"] = train_set.epoch
            augmenting["generator"].manual_seed(seed * 1_000_003 + train_set.epoch)
        images = augment(batch["face"], augmenting["generator"]).to(device, non_blocking=True)
        images = images.contiguous(memory_format=torch.channels_last)
        target = torch.tensor([key_class[k] for k in batch["key"]], device=device)
        logits, attribute_logits = net(images)
        loss = F.cross_entropy(logits, target)
        for name, head_logits in attribute_logits.items():
            classes = list(ATTRIBUTES[name])
            labels = torch.tensor([classes.index(m[name]) for m in batch["meta"]], device=device)
            loss = loss + attribute_weight * F.cross_entropy(head_logits, labels)
        return loss, {"acc": float((logits.argmax(1) == target).float().mean())}

    # BatchNorm statistics are recomputed from plain (not augmented) crops
    history = fit(model, train_set, step, params, out, plots_dir, fingerprint({"params": dict(params),
                  "config": config}), "face_encoder", device,
                  bn_forward=lambda batch: vgg(batch["face"].to(device).contiguous(memory_format=torch.channels_last)))
    metrics: dict[str, Any] = {
        "source": "train",
        "n_identities": len(identities),
        "n_train": len(key_class) - len(heldout),
        "n_heldout": len(heldout),
        "train_loss": history[-1]["loss"],
        "train_acc": history[-1]["acc"],
        "chance_acc": 1.0 / len(identities),
        "history": history,
        **run_settings(params),
    }
    if current().main:
        heldout_set = SplitDataset(shards_dir, "train", fields=("face",), keep=lambda meta: meta.get("key") in heldout)
        metrics["heldout_acc"] = identity_accuracy(vgg, make_loader(heldout_set, int(params["batch_size"])),
                                                   key_class, device)
    return vgg.to(memory_format=torch.contiguous_format).eval(), config, metrics  # a plain checkpoint


def shard_image_size(shards_dir: str | Path) -> int:
    """Side of the face crops in the shards (from the first sample of the first train or test shard)."""
    from pipeline.data.shards import iter_samples, list_shards

    for split in ("train", "test"):
        for sample in iter_samples(list_shards(shards_dir, split)[:1], fields=["face"]):
            return int(sample["face"].shape[0])
    raise FaceEncoderError(f"no shards in {shards_dir} (run preprocess first)")


def count_parameters(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


#: the ``face_encoder`` params section's keys
KEYS = ("source", "weights", "sha256", "width", "fc_dim", "epochs", "batch_size", "lr", "beta1", "eps", "lr_decay",
        "lr_decay_every", "dropout", "batch_norm", "attribute_weight", "seed", "device", "precision", "num_workers")


def build_face_encoder(corpus_dir: str | Path, shards_dir: str | Path, out: str | Path, metrics_path: str | Path,
                       plots_dir: str | Path, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``face_encoder`` stage: load verified pretrained weights or train on the face corpus, for the crop size
    of ``shards_dir``; save the checkpoint and metrics and return the metrics (None on ranks other than 0 under
    torchrun, which train but do not write)."""
    from pipeline.common.io import write_json
    from pipeline.common.params import require
    from pipeline.data.attributes import check_corpus_meta
    from pipeline.training.distributed import current
    from pipeline.training.loop import save_final

    require(params, *KEYS, section="face_encoder")
    source = str(params["source"])
    image_size = shard_image_size(shards_dir)
    if source == "pretrained":
        model, config = build_pretrained(str(params["weights"]), str(params["sha256"]), image_size)
        metrics: dict[str, Any] = {"source": "pretrained", "sha256": str(params["sha256"]).lower()}
        extra = {"source": "pretrained", "sha256": metrics["sha256"], "image_size": config["image_size"],
                 "n_identities": config["num_classes"]}
        Path(plots_dir).mkdir(parents=True, exist_ok=True)  # a declared output: no curves, nothing was trained
        (Path(plots_dir) / "pretrained.txt").write_text(f"pretrained weights, sha256 {metrics['sha256']}: no "
                                                        f"training curves\n", encoding="utf-8")
    elif source == "train":
        corpus_size = shard_image_size(corpus_dir)
        if corpus_size != image_size:
            raise FaceEncoderError(f"the face corpus {corpus_dir} has {corpus_size}px images but the shards have "
                                   f"{image_size}px crops: set face_corpus.image_size: {image_size}")
        model, config, metrics = train_face_encoder(corpus_dir, params, image_size, out, plots_dir,
                                                    check=check_corpus_meta)
        extra = {"source": "train", "image_size": image_size, "n_identities": metrics["n_identities"],
                 "seed": int(params["seed"]), "epochs": int(params["epochs"])}
    else:
        raise FaceEncoderError(f"face_encoder.source must be 'train' or 'pretrained', got {source!r}")
    if not current().main:
        return None
    metrics.update({"image_size": config["image_size"], "feature_dim": config["fc_dim"],
                    "n_params": count_parameters(model)})
    save_final(out, model, "vggface", config, extra)
    write_json(metrics_path, metrics)
    return metrics


def summary_line(metrics: Mapping[str, Any], took: str) -> str:
    """The stage's one-line summary: held-out identity accuracy (trained) or the source, and the network's size."""
    detail = (f"held-out identity accuracy {metrics['heldout_acc']:.3f} over {metrics['n_heldout']} clips "
              f"(chance {metrics['chance_acc']:.3f}), {metrics['n_identities']} identities"
              if metrics.get("heldout_acc") is not None else f"source {metrics['source']}")
    return (f"face_encoder: {detail}; {metrics['n_params']} parameters, {metrics['image_size']}px, "
            f"feature dim {metrics['feature_dim']}, {took}")
