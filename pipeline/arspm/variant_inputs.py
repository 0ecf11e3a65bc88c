"""What a Table 4 variant reads at run time: its priors, the gender predictions, the samples it uses and its prior
per batch (``pipeline.arspm.variants`` has the variants themselves).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline.arspm.variants import Variant
from pipeline.common.errors import TrainingError


def load_variant_priors(priors_dir: str | Path, dim: int, needed: tuple[str, ...] = ("neutral",)) -> dict[str, np.ndarray]:
    """The float32 ``[dim]`` priors of ``priors.npz`` (``neutral``/``male``/``female``), checked against ``dim``.

    Every prior in ``needed`` must be present and ``dim``-d; a prior outside ``needed`` that is empty (no
    training sample of that gender) is left out, one of another non-zero size is still an error.
    """
    from pipeline.arspm.priors import load_priors

    data = load_priors(priors_dir)
    found = {name: np.asarray(data[name], dtype=np.float32).reshape(-1) if np.ndim(data[name]) <= 1
             else np.asarray(data[name], dtype=np.float32) for name in ("neutral", "male", "female") if name in data}
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
        raise TrainingError(f"priors file {priors_dir} has no {', '.join(missing)} prior")
    return priors


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
