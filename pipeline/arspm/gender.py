"""The ``gender`` stage: the paper's light CNN voice gender classifier (§3.1), trained on labelled train samples.

Trains ``models.gender.VoiceGenderClassifier`` (class 0 = M, 1 = F) on the spectrograms of train-split samples
whose meta carries a gender label, reports the accuracy on the labelled test samples (speakers never seen in
training), and predicts a gender for EVERY sample of every split: ``predictions.parquet`` with
``key, split, label (M/F/null), p_female, pred (M/F)``. The priors stage builds the male/female priors from
``pred`` (the paper uses the classifier's predictions, not labels).

With a gender corpus (``pipeline.data.gender_corpus``: a separately labelled corpus in its own shards, as the paper's
classifier is trained apart from AVSpeech) the classifier trains on the corpus's train split and its held-out
accuracy is measured on the corpus's test speakers; the main shards' labels, where there are any, are then only
scored. Without a gender corpus it trains on the main train split's labelled samples.

Without any labelled train sample there is nothing to learn: the stage writes predictions with ``p_female`` and
``pred`` null and metrics ``available: false``, and the male/female priors (and the gender variants that need
them) are unavailable; loading them fails with one clear sentence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.arspm.gender_predictions import CLASSES, SPLITS, write_predictions


def label_index(meta: dict) -> int | None:
    """0 for ``M``, 1 for ``F``, None when the sample has no (valid) label."""
    label = (meta or {}).get("gender")
    return CLASSES.index(label) if label in CLASSES else None


def _labelled(meta: dict) -> bool:
    return label_index(meta) is not None


def count_labels(shards_dir: str | Path, split: str) -> dict[str, int]:
    """``{"M": .., "F": .., "none": ..}`` over a split's samples (reads only meta)."""
    from pipeline.data.shards import iter_samples, list_shards

    counts = {"M": 0, "F": 0, "none": 0}
    for sample in iter_samples(list_shards(shards_dir, split), fields=["meta"]):
        idx = label_index(sample["meta"])
        counts[CLASSES[idx] if idx is not None else "none"] += 1
    return counts


def _targets(metas: Iterable[dict]) -> torch.Tensor:
    return torch.tensor([label_index(m) for m in metas], dtype=torch.long)


def train_classifier(shards_dir: str | Path, params: Mapping[str, Any], device: torch.device, out: str | Path,
                     plots_dir: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Train the classifier on the labelled train samples of ``shards_dir`` (cross-entropy) with the training loop
    every model uses (``pipeline.training.loop.fit``: resume state beside ``out``, curves under ``plots_dir``, DDP under
    torchrun); returns the model and its train metrics."""
    from models.gender import VoiceGenderClassifier
    from pipeline.common.device import seed_everything
    from pipeline.data.datasets import SplitDataset, spec_batch
    from pipeline.training.loop import fingerprint, fit

    seed_everything(int(params["seed"]))
    config = {"width": float(params["width"]), "in_channels": 2, "num_classes": 2}
    model = VoiceGenderClassifier(**config).to(device)
    dataset = SplitDataset(shards_dir, "train", fields=("spec", "meta"), shuffle=True, seed=int(params["seed"]),
                           buffer_size=1000, keep=_labelled)

    def step(batch: dict, net: nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        target = _targets(batch["meta"]).to(device)
        logits = net(spec_batch(batch, device))
        return nn.functional.cross_entropy(logits, target), {"acc": float((logits.argmax(1) == target).float().mean())}

    history = fit(model, dataset, step, params, out, plots_dir, fingerprint({"params": dict(params), "config": config,
                  "data": str(shards_dir)}), "gender", device)
    return model, {"train_loss": history[-1]["loss"], "train_acc": history[-1]["acc"], "history": history}


@torch.no_grad()
def predict_split(model: nn.Module | None, shards_dir: str | Path, split: str, batch_size: int,
                  device: torch.device) -> list[dict[str, Any]]:
    """One prediction row per sample of ``split`` (``p_female``/``pred`` null when ``model`` is None)."""
    from pipeline.data.datasets import SplitDataset, make_loader, spec_batch
    from pipeline.data.shards import list_shards

    if not list_shards(shards_dir, split):
        return []
    fields = ("spec", "meta") if model is not None else ("meta",)
    rows = []
    if model is not None:
        model.eval()
    for batch in make_loader(SplitDataset(shards_dir, split, fields=fields), batch_size):
        if model is not None:
            probs = torch.softmax(model(spec_batch(batch, device)).float(), dim=1)[:, 1].cpu().numpy()
        else:
            probs = [None] * len(batch["key"])
        for key, meta, p in zip(batch["key"], batch["meta"], probs):
            label = meta.get("gender") if meta.get("gender") in CLASSES else None
            p_female = None if p is None else float(np.float32(p))
            pred = None if p is None else ("F" if p_female >= 0.5 else "M")
            rows.append({"key": key, "split": split, "label": label, "p_female": p_female, "pred": pred})
    return rows


def accuracy(rows: Sequence[dict[str, Any]], split: str) -> dict[str, Any]:
    """Accuracy of ``pred`` against ``label`` over labelled rows of ``split`` (overall and per class)."""
    scored = [r for r in rows if r["split"] == split and r["label"] in CLASSES and r["pred"] in CLASSES]
    out: dict[str, Any] = {"n": len(scored), "accuracy": None}
    if scored:
        out["accuracy"] = sum(r["pred"] == r["label"] for r in scored) / len(scored)
    for label in CLASSES:
        sub = [r for r in scored if r["label"] == label]
        out[f"n_{label}"] = len(sub)
        out[f"accuracy_{label}"] = (sum(r["pred"] == label for r in sub) / len(sub)) if sub else None
    return out


#: the ``gender`` params section's keys
KEYS = ("width", "epochs", "batch_size", "lr", "beta1", "eps", "lr_decay", "lr_decay_every", "seed", "device",
        "precision", "num_workers")


def run_gender(shards_dir: str | Path, out_dir: str | Path, params: dict[str, Any], plots_dir: str | Path,
               corpus_dir: str | Path | None = None) -> dict[str, Any] | None:
    """Train (on the gender corpus when it has labelled train samples, else on the main shards' labelled train
    samples), predict every main sample, write ``model.pt`` + ``predictions.parquet``; return metrics. Under
    torchrun every rank trains and rank 0 alone predicts and writes (the others return None)."""
    from pipeline.common.device import resolve_device
    from pipeline.common.params import require
    from pipeline.data.datasets import DatasetError
    from pipeline.data.shards import list_shards
    from pipeline.training.distributed import current, rank_device
    from pipeline.training.loop import run_settings, save_final

    require(params, *KEYS, section="gender")

    device = rank_device(resolve_device(str(params["device"])))  # cuda:<LOCAL_RANK> under torchrun
    if not list_shards(shards_dir, "train"):
        raise DatasetError(f"no 'train' shards in {shards_dir} (empty split?)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = {split: count_labels(shards_dir, split) for split in SPLITS}
    corpus_labels = ({split: count_labels(corpus_dir, split) for split in SPLITS}
                     if corpus_dir is not None and list_shards(corpus_dir, "train") else None)
    if corpus_labels and corpus_labels["train"]["M"] + corpus_labels["train"]["F"] > 0:
        trained_on, train_dir = "gender_corpus", corpus_dir
    elif labels["train"]["M"] + labels["train"]["F"] > 0:
        trained_on, train_dir = "manifest", shards_dir
    else:
        trained_on, train_dir = None, None
    model = None
    metrics: dict[str, Any] = {"available": trained_on is not None, "trained_on": trained_on, "labels": labels}
    if corpus_labels is not None:
        metrics["corpus_labels"] = corpus_labels
    if train_dir is not None:
        # the resume state lives beside the output directory, which DVC empties before it reruns the stage
        anchor = out_dir.with_name(f"{out_dir.name}-model.pt")
        model, train_metrics = train_classifier(train_dir, params, device, anchor, plots_dir)
        if not current().main:
            return None
        metrics.update(train_metrics, **run_settings(params))
        save_final(out_dir / "model.pt", model, "voice_gender", {"width": float(params["width"]), "in_channels": 2,
                   "num_classes": 2}, {"classes": list(CLASSES), "seed": int(params["seed"]),
                   "epochs": int(params["epochs"]), "trained_on": trained_on}, resume_of=anchor)
        model.to(device)
    elif not current().main:
        return None
    rows: list[dict[str, Any]] = []
    for split in SPLITS:
        rows.extend(predict_split(model, shards_dir, split, int(params["batch_size"]), device))
    write_predictions(out_dir / "predictions.parquet", rows)
    metrics["test"] = accuracy(rows, "test")
    metrics["train"] = accuracy(rows, "train")
    # The held-out accuracy: on speakers the classifier never heard, of the corpus it trained on.
    metrics["test_accuracy"] = metrics["test"]["accuracy"]
    if trained_on == "gender_corpus":
        corpus_rows = [r for split in SPLITS
                       for r in predict_split(model, corpus_dir, split, int(params["batch_size"]), device)]
        metrics["corpus_test"] = accuracy(corpus_rows, "test")
        metrics["corpus_train"] = accuracy(corpus_rows, "train")
        metrics["test_accuracy"] = metrics["corpus_test"]["accuracy"]
    metrics["predicted"] = {split: {label: sum(1 for r in rows if r["split"] == split and r["pred"] == label)
                                    for label in CLASSES} for split in SPLITS}
    return metrics


def summary_line(metrics: dict[str, Any], took: str) -> str:
    """The stage's one-line summary: where the classifier trained and its held-out accuracy."""
    if not metrics["available"]:
        return ("gender: no labelled train samples: predictions written without a gender; the male/female priors "
                f"and the gender variants are unavailable ({took})")
    on_corpus = metrics["trained_on"] == "gender_corpus"
    held_out = metrics["corpus_test"] if on_corpus else metrics["test"]
    trained = metrics["corpus_train"] if on_corpus else metrics["train"]
    acc = "n/a (no labelled test samples)" if held_out["accuracy"] is None else f"{held_out['accuracy']:.3f}"
    return (f"gender: trained on {'the gender corpus' if on_corpus else 'the manifest'}; held-out accuracy {acc} "
            f"on {held_out['n']} labelled test samples (train acc {trained['accuracy']:.3f} on {trained['n']}), {took}")
