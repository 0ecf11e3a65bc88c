"""The one base class of every error that means bad input, not a bug.

A stage catches :class:`PipelineError` and prints ``<stage>: error: <message>`` (one sentence, exit code 2)
instead of a traceback (``pipeline.common.stage``). Each module's own error class derives from it, and also from the
builtin it has always been (``ValueError``, ``RuntimeError``), so callers catching those keep working.

Error classes that several layers raise live here too, so that raising one imports no training or model code.
"""
from __future__ import annotations


class PipelineError(Exception):
    """Bad input, a bad parameter or a missing upstream output: one sentence for the user."""


class TrainingError(PipelineError, ValueError):
    """Training or evaluation cannot start or produced nothing (bad variant, empty split, mismatched inputs)."""
