"""Pure ``nn.Module``s and losses (no file I/O except weight loading), and a registry to build them by name.

``build_model(arch, config)`` is how stages and checkpoints construct a model from a JSON-able config: ``arch``
names a registered architecture and ``config`` holds constructor keyword arguments (unknown keys are an error,
missing keys take the paper's defaults).

The registry is filled lazily: a model module registers its class when it is imported (``@register(name)``),
and nothing is imported here. A stage therefore imports exactly the model modules it builds, and its generated
code deps (``python -m pipeline.ops.deps``) list exactly those files: an edit to one model reruns only the stages
that build it. Building an architecture whose module was not imported is an error that names the module.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from torch import nn

#: architecture name -> the module that defines it (for messages; the module registers the class itself)
MODULES: dict[str, str] = {
    "vggface": "models.vggface",
    "face_decoder": "models.decoder",
    "speech_encoder": "models.encoder",
    "voice_gender": "models.gender",
    "attribute_probe": "models.probe",
    "judge_resnet": "models.judge",
}

#: architecture name -> class, for the model modules imported so far
ARCHITECTURES: dict[str, Callable[..., "nn.Module"]] = {}

T = TypeVar("T")


class ModelConfigError(ValueError):
    """An unknown architecture name or a config key the architecture does not take."""


def register(arch: str) -> Callable[[T], T]:
    """Class decorator: make ``cls`` buildable as ``arch`` (its module must be listed in :data:`MODULES`)."""
    def decorate(cls: T) -> T:
        if MODULES.get(arch) != cls.__module__:
            raise ModelConfigError(f"architecture {arch!r} is defined in {cls.__module__} but MODULES says "
                                   f"{MODULES.get(arch)}")
        ARCHITECTURES[arch] = cls
        return cls

    return decorate


def build_model(arch: str, config: Mapping[str, Any] | None = None) -> "nn.Module":
    """Construct architecture ``arch`` with keyword arguments ``config``; ModelConfigError when either is wrong."""
    if arch not in ARCHITECTURES:
        if arch in MODULES:
            raise ModelConfigError(f"model architecture {arch!r} is not loaded: import {MODULES[arch]} in the code "
                                   f"that builds it (so that its stage depends on that file)")
        raise ModelConfigError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(MODULES))}")
    cls = ARCHITECTURES[arch]
    config = dict(config or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ModelConfigError(f"{arch} does not take config key(s) {', '.join(unknown)}; "
                               f"it takes {', '.join(accepted)}")
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"cannot build {arch} from config {config}: {exc}") from exc


__all__ = ["ARCHITECTURES", "MODULES", "ModelConfigError", "build_model", "register"]
