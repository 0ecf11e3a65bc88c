"""The paper's Table 4 variants: how each fuses its prior and which samples it uses (a table, no torch).

Variants: ``non_prior`` (no prior), ``neutral``/``neutral_fc`` (neutral prior, sum/fc fusion), ``gender``/
``gender_fc`` (male or female prior chosen per sample by the voice gender classifier's prediction) and
``male``/``female`` (one gender's data only, that gender's prior, sum fusion). A sample's gender for the
male/female subsets is its label when the dataset has one, else the classifier's prediction.

What a variant reads at run time (its priors, the gender predictions, its prior per batch) is in
``pipeline.arspm.variant_inputs``; the report and the stages' variant lists need only this table.
"""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.common.errors import TrainingError


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



def get_variant(name: str) -> Variant:
    """The variant called ``name`` or a TrainingError listing the valid names."""
    if name not in VARIANTS:
        raise TrainingError(f"unknown variant '{name}' (valid: {', '.join(VARIANTS)})")
    return VARIANTS[name]


def priors_needed(variant: Variant) -> tuple[str, ...]:
    """Names of the priors a variant uses."""
    if variant.prior is None:
        return ()
    return ("male", "female") if variant.prior == "gender" else (variant.prior,)
