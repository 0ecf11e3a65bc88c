"""Channel scaling shared by every model: one ``width`` multiplier shrinks the paper's layer widths."""
from __future__ import annotations


def scaled(channels: int, width: float) -> int:
    """Return ``channels * width`` rounded to the nearest integer, at least 1.

    Raises ValueError for a non-positive ``width`` (a zero-width network is a configuration error).
    """
    if not width > 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, int(round(channels * width)))
