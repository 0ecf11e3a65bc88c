"""Figures as reproducible PNGs: matplotlib without a display, no metadata (same data, same bytes), atomic writes.

Every stage and tool that draws goes through here, so a report needs matplotlib and nothing of the models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pipeline.common.io import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> None:
    """Write ``fig`` as a PNG at 80 dpi, atomically and without metadata, then close it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # No metadata: the PNG must be byte-identical across runs.
        fig.savefig(tmp, format="png", dpi=80, metadata={"Software": None})
    pyplot().close(fig)


def save_grid_png(path: str | Path, rows: Sequence[Sequence[Any]], row_labels: Sequence[str],
                  column_labels: Sequence[str] | None = None) -> None:
    """Save a grid of uint8 faces (each row ``[C, H, W, 3]``) as a PNG with row (and column) labels, atomically."""
    plt = pyplot()
    n_rows = len(rows)
    n_cols = max(1, max(len(r) for r in rows))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols + 1.2, 1.3 * n_rows), squeeze=False)
    for r, (faces, label) in enumerate(zip(rows, row_labels)):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(faces) and faces[c] is not None:
                ax.imshow(faces[c])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            if r == 0 and column_labels is not None and c < len(column_labels):
                ax.set_title(column_labels[c], fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
