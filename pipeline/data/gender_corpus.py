"""The gender corpus: a separately labelled speech corpus for the voice gender classifier.

The paper trains its gender CNN on a labelled set apart from AVSpeech, which has no gender labels (§3.1). Here
that set is an AVSpeech-format CSV plus a labels CSV (``gender_corpus.csv``/``.labels``; for a local VoxCeleb copy
``pipeline.data.recipes.voxceleb`` writes both). It goes through the same code as the main corpus, into its own cached
outputs: ``gender_corpus`` (the manifest, split by speaker), ``gender_corpus_download`` and
``gender_corpus_preprocess`` (the download and preprocess stages' code and params), and the ``gender`` stage
trains on its train split and reports the accuracy on its held-out speakers.

With ``gender_corpus.csv: ""`` (the demo) the three stages write empty outputs in about a second and the
classifier trains on the main manifest's labelled samples, as before.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.data.manifest import (
    ManifestConfig,
    ManifestError,
    ManifestResult,
    build_manifest,
    empty_result,
    read_labels,
)


def build_gender_corpus_manifest(csv_path: str, labels_path: str, cfg: ManifestConfig) -> ManifestResult:
    """The gender corpus's manifest: empty when ``csv_path`` is ""; otherwise every labelled row, split by speaker.

    Raises ManifestError (one sentence) when only one of the two paths is set, or when no kept row has a gender."""
    if not csv_path:
        if labels_path:
            raise ManifestError("gender_corpus.labels is set but gender_corpus.csv is empty: set both (for a local "
                                "VoxCeleb copy, python -m pipeline.data.recipes.voxceleb writes both) or neither")
        result = empty_result()
        result.counts["configured"] = False
        return result
    if not labels_path:
        raise ManifestError(f"gender_corpus.csv is {csv_path} but gender_corpus.labels is empty: the gender corpus "
                            f"is there for its gender labels, so give its labels CSV (video_id,speaker_id,gender)")
    problems: Counter = Counter()
    labels = read_labels(Path(labels_path), problems)
    result = build_manifest(csv_path, labels, cfg, label_problems=problems, labels_path=labels_path)
    genders = Counter(r.gender for r in result.rows if r.gender in ("M", "F"))
    if not genders:
        raise ManifestError(f"no clip of the gender corpus {csv_path} has a gender in {labels_path}: check that its "
                            f"video_id column holds the clips' file names without extension")
    result.counts["configured"] = True
    result.counts["genders"] = {g: genders.get(g, 0) for g in ("M", "F")}
    return result
