"""Shared plotting helpers (figure grid, colours, ordering of groups and of top features)."""

from __future__ import annotations

import os

# No backend is chosen here: notebooks keep their inline backend, scripts and the workflow pick a
# non-interactive one through MPLBACKEND (the Makefile sets Agg).
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from splicevi._io import atomic_path

#: Figure formats :func:`save_figure` writes.
FORMATS = (".png", ".svg")


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` (format from the suffix: .png or .svg) atomically and close it."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix not in FORMATS:
        raise ValueError(f"unsupported figure format '{suffix}' (use one of {', '.join(FORMATS)})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=suffix[1:])
    plt.close(fig)


def grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.0, 3.5)):
    """A figure with ``n`` panels on a grid; unused axes are hidden. Returns (fig, flat axes)."""
    n = max(int(n), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def empty_figure(message: str):
    """A figure that says why there is nothing to show (keeps the report complete)."""
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def categorical_colors(n: int):
    """``n`` distinct colours (tab10 / tab20, then a continuous map)."""
    if n <= 10:
        return list(plt.get_cmap("tab10").colors[:n])
    if n <= 20:
        return list(plt.get_cmap("tab20").colors[:n])
    return [plt.get_cmap("gist_ncar")(x) for x in np.linspace(0.05, 0.95, n)]


def top_per_contrast(table: pd.DataFrame, id_col: str, n_top: int, score: str = "proba_ds") -> list[str]:
    """Ids of the ``n_top`` best rows of each contrast (by ``rank`` if present, else ``score``), in order."""
    if id_col not in table.columns:
        raise ValueError(f"table lacks column '{id_col}'")
    if "rank" in table.columns:
        t = table.sort_values(["rank"], kind="stable")
    else:
        t = table.sort_values(score, ascending=False, kind="stable")
    if "contrast" in t.columns:
        t = t.groupby("contrast", sort=False).head(n_top)
    else:
        t = t.head(n_top)
    return list(pd.unique(t[id_col].astype(str)))
