"""Checks that must fail in seconds at the start of ``dvc repro``, not hours in.

The ``preflight`` stage runs right after ``sample`` and before ``manifest``, so before any download,
preprocessing or training. Today it checks one thing: the variants that need a voice gender classifier
(``gender``, ``gender_fc``, ``male``, ``female``: the gender priors and the one-gender subsets) have gender labels
to train it on, in the main manifest's labels CSV or in a separate gender corpus (``gender_corpus``). AVSpeech has
none, so the paper's configuration needs a gender corpus (or a labels CSV) or must drop those variants; without
this check ``train_encoder@gender`` stopped after everything before it had run.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

from pipeline.common.errors import PipelineError
from pipeline.data.manifest import ManifestError, read_labels

# The Table 4 variants that use the voice classifier's predictions (a gender prior or a one-gender subset). Spelled
# out rather than read from pipeline.arspm.variants' registry, so that preflight stays free of torch; a test checks
# that the two agree.
GENDER_VARIANTS = ("gender", "gender_fc", "male", "female")


class PreflightError(PipelineError, ValueError):
    """The run as configured would stop later; one sentence says what to change."""


def count_gender_labels(labels_csv: str) -> int:
    """Rows of the labels CSV with a gender (M/F); 0 when there is no labels CSV."""
    if not labels_csv:
        return 0
    try:
        labels = read_labels(Path(labels_csv), Counter())  # bad rows are the manifest stage's to report
    except ManifestError as exc:
        raise PreflightError(str(exc)) from None
    return sum(label.gender in ("M", "F") for label in labels.values())


def check_gender_labels(variants: Sequence[str], labels_csv: str, corpus_labels_csv: str = "") -> dict:
    """Refuse gender variants without any gender label, in the manifest's labels CSV or the gender corpus's;
    return what was checked."""
    needs = [v for v in variants if v in GENDER_VARIANTS]
    labelled = count_gender_labels(labels_csv) if needs else None
    corpus_labelled = count_gender_labels(corpus_labels_csv) if needs else None
    if needs and not labelled and not corpus_labelled:
        where = f"{labels_csv} has no row with a gender (M/F)" if labels_csv else "manifest.labels is empty"
        corpus = (f"{corpus_labels_csv} has none either" if corpus_labels_csv
                  else "there is no gender corpus (gender_corpus.csv/labels)")
        raise PreflightError(
            f"train_encoder.variants asks for {', '.join(needs)}, which need gender labels to train the voice "
            f"gender classifier, but {where} and {corpus}: set gender_corpus.csv and gender_corpus.labels to a "
            f"labelled speech corpus (python -m pipeline.data.recipes.voxceleb makes one from a local VoxCeleb copy) "
            f"or manifest.labels to a labels CSV with a gender column, or drop those variants")
    return {"gender_variants": needs, "gender_labels": labelled, "gender_corpus_labels": corpus_labelled}
