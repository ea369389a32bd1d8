"""UMAP scatter plots coloured by annotations or QC metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ._utils import categorical_colors, empty_figure, grid, natural_sort

#: QC columns shown by ``color=["qc"]``, when present.
QC_COLUMNS = ("n_junction_reads", "n_atse_observed", "total_counts", "n_genes_detected")
_COUNT_LIKE = {"n_junction_reads", "total_counts"}


def umap(cells: pd.DataFrame, color: Sequence[str], basis: tuple[str, str] = ("umap1", "umap2"), max_categories: int = 60):
    """One UMAP panel per annotation.

    Parameters
    ----------
    cells
        One row per cell with the UMAP coordinates (columns ``basis``) and the annotations.
    color
        Columns to colour by. ``"qc"`` expands to the QC metrics present (see ``QC_COLUMNS``),
        ``"annotations"`` to the text annotations with 2–50 levels (other than the clusters).
        Text columns (or few distinct integers) are drawn as categories, numbers with a colour bar
        (count-like metrics on a log scale).
    basis
        Columns of the coordinates.
    max_categories
        Categorical annotations with more levels are drawn without a legend.
    """
    missing = [b for b in basis if b not in cells.columns]
    if missing:
        raise ValueError(f"cell table lacks UMAP coordinates {missing}")
    keys: list[str] = []
    for c in color:
        if c == "qc":
            keys += [q for q in QC_COLUMNS if q in cells.columns]
        elif c == "annotations":
            keys += [
                a for a in cells.columns
                if a not in keys and a not in ("leiden", *basis) and ":" not in str(a)
                and (cells[a].dtype == object or isinstance(cells[a].dtype, pd.CategoricalDtype))
                and 2 <= cells[a].nunique() <= 50
            ]
        elif c not in cells.columns:
            raise ValueError(f"no cell annotation '{c}' (available: {', '.join(map(str, cells.columns))})")
        else:
            keys.append(c)
    keys = list(dict.fromkeys(keys))
    if not keys:
        return empty_figure("no annotation to colour by")
    fig, axes = grid(len(keys), ncols=min(len(keys), 2), size=(5.2, 4.2))
    x, y = cells[basis[0]].to_numpy(), cells[basis[1]].to_numpy()
    size = float(np.clip(3000 / max(len(cells), 1), 2, 30))
    for ax, key in zip(axes, keys, strict=True):
        values = cells[key]
        if _is_categorical(values):
            labels = values.astype(str).where(values.notna(), "NA")
            levels = natural_sort(labels)
            colors = categorical_colors(len(levels))
            for level, col in zip(levels, colors, strict=True):
                m = (labels == level).to_numpy()
                ax.scatter(x[m], y[m], s=size, color=col, label=f"{level} ({m.sum()})", linewidths=0, rasterized=True)
            if len(levels) <= max_categories:
                ax.legend(
                    frameon=False, fontsize="small", markerscale=max(1.0, 12 / size), loc="center left",
                    bbox_to_anchor=(1.0, 0.5), ncols=1 if len(levels) <= 15 else 2,
                )
        else:
            v = values.to_numpy(dtype=float)
            label = key
            if key in _COUNT_LIKE:
                v, label = np.log10(1 + v), f"log10(1 + {key})"
            order = np.argsort(np.nan_to_num(v, nan=-np.inf))
            sc = ax.scatter(x[order], y[order], c=v[order], s=size, cmap="viridis", linewidths=0, rasterized=True)
            fig.colorbar(sc, ax=ax, label=label, shrink=0.8)
        ax.set_title(key)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(basis[0].upper())
        ax.set_ylabel(basis[1].upper())
    fig.tight_layout()
    return fig


def _is_categorical(values: pd.Series) -> bool:
    if isinstance(values.dtype, pd.CategoricalDtype) or values.dtype == object or values.dtype == bool:
        return True
    if pd.api.types.is_integer_dtype(values) and values.nunique() <= 12 and values.name not in QC_COLUMNS:
        return True
    return False
