"""The face attributes every labelled face carries, and the check that a face corpus image has them.

The vocabulary lives apart from the face renderer (``pipeline.data.sample``) on purpose: the face models, the
attribute probe and the evaluations read these names, and importing them must not make the renderer a code
dependency of their stages (an edit to how a face is drawn reruns only the stages that draw faces).
"""
from __future__ import annotations

from typing import Any, Mapping

from pipeline.common.errors import PipelineError

GENDERS = ("M", "F")
AGE_GROUPS = ("young", "adult", "senior")
#: skin tones are numbered dark -> light (the renderer's palette has one colour per class)
SKIN_CLASSES = (0, 1, 2, 3, 4, 5)
HAIR_NAMES = ("black", "brown", "blonde", "red", "grey")

#: attribute -> its classes, in label order (what the attribute probe predicts)
ATTRIBUTES: dict[str, tuple] = {
    "gender": GENDERS,
    "age_group": AGE_GROUPS,
    "skin": SKIN_CLASSES,
    "hair": HAIR_NAMES,
    "glasses": (False, True),
    "beard": (False, True),
}


class CorpusError(PipelineError, ValueError):
    """The face corpus cannot be made or read (bad settings, a sample without its identity or attributes)."""


def check_corpus_meta(meta: Mapping[str, Any], where: str) -> None:
    """Raise CorpusError (one sentence naming ``where``) when an image lacks its identity or an attribute."""
    key = meta.get("key", "?")
    if not meta.get("speaker_id"):
        raise CorpusError(f"{where}: image {key} has no identity ('speaker_id' missing from its meta.json)")
    for name, classes in ATTRIBUTES.items():
        if name not in meta:
            raise CorpusError(f"{where}: image {key} has no '{name}' attribute in its meta.json")
        if meta[name] not in classes:
            raise CorpusError(f"{where}: image {key} has {name}={meta[name]!r}, not one of {list(classes)}")
