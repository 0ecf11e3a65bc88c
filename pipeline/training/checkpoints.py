"""Model checkpoints: a plain ``state_dict`` plus a small JSON-able header, loadable with ``weights_only=True``.

File content (``torch.save`` of a dict)::

    {"header": {"arch": str, "config": {...}, "format_version": 1, "config_hash": sha256 of the sorted-JSON
                config, **extra}, "state_dict": {name: tensor}}

The header holds only JSON types (dict/list/str/int/float/bool/None), so ``torch.load(weights_only=True)`` accepts
it and nothing executable is ever unpickled. Tensors are saved as contiguous CPU copies, and ``torch.save``'s zip
archive carries no timestamps, so equal weights and header give byte-identical files (tested).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path

FORMAT_VERSION = 1
_RESERVED = ("arch", "config", "format_version", "config_hash")


class CheckpointError(PipelineError, RuntimeError):
    """A checkpoint is missing, unreadable, of the wrong architecture, or does not fit its model."""


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the config as sorted, compact JSON (independent of key order and of git)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_roundtrip(obj: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(obj, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {what} is not JSON-able: {exc}") from exc


def save_checkpoint(path: str | Path, model: nn.Module, arch: str, config: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s state dict and a header (arch, config, hash, ``extra``) to ``path`` atomically."""
    config = _json_roundtrip(dict(config), "config")
    extra = _json_roundtrip(dict(extra or {}), "extra header")
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise CheckpointError(f"extra header keys {clash} are reserved")
    header = {"arch": arch, "config": config, "format_version": FORMAT_VERSION,
              "config_hash": config_hash(config), **extra}
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        # A file object, not a path: torch names the zip records after a path's stem (here the random temp
        # name), but uses the fixed name "archive" for file objects, which keeps the bytes reproducible.
        torch.save({"header": header, "state_dict": state}, fh)


def _load_raw(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    try:
        raw = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or pickled objects refused by weights_only
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path} is not a readable checkpoint ({first})") from exc
    if (not isinstance(raw, dict) or not isinstance(raw.get("header"), dict)
            or not isinstance(raw.get("state_dict"), dict) or "arch" not in raw["header"]):
        raise CheckpointError(f"{path} is not a checkpoint (expected a dict with 'header' and 'state_dict')")
    version = raw["header"].get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format_version {version}, this code reads {FORMAT_VERSION}")
    return raw


def read_header(path: str | Path) -> dict[str, Any]:
    """The header dict of a checkpoint (arch, config, format_version, config_hash and extras)."""
    return dict(_load_raw(path)["header"])


def load_checkpoint(path: str | Path, expected_arch: str | None = None,
                    map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights; returns ``(model in eval mode, header)``."""
    from models import ModelConfigError, build_model  # models import no pipeline code; keep the edge one-way

    def build(header: dict[str, Any]) -> nn.Module:
        arch = header["arch"]
        if expected_arch is not None and arch != expected_arch:
            raise CheckpointError(f"checkpoint {path} holds a {arch!r} model, expected {expected_arch!r}")
        try:
            return build_model(arch, header.get("config") or {})
        except ModelConfigError as exc:
            raise CheckpointError(f"checkpoint {path}: {exc}") from exc

    return load_built(path, build, map_location)


def load_built(path: str | Path, build: Callable[[dict[str, Any]], nn.Module],
               map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a checkpoint into the module ``build(header)`` makes (it may refuse the header with one sentence):
    the model families build theirs from their own code, not from ``models``' registry. Returns ``(model in eval
    mode, header)``; weights that do not fit the built module are refused in one sentence."""
    raw = _load_raw(path, map_location)
    header = dict(raw["header"])
    model = build(header)
    own = model.state_dict()
    state = raw["state_dict"]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        raise CheckpointError(f"checkpoint {path} does not fit its {header['arch']} config: missing "
                              f"{missing or 'none'}, unexpected {unexpected or 'none'}, wrong shape {bad or 'none'}")
    model.load_state_dict(state, strict=True)
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    return model, header
