"""Observed PSI of the top differential junctions per group of cells (dot plot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from splicevi._labels import cell_labels, natural_sort

from ._counts import pooled_counts, well_observed
from ._utils import empty_figure


def group_psi(mdata, junctions: Sequence[str], groupby: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pooled observed PSI and the fraction of cells observed, per junction and group.

    PSI of a junction in a group = (reads of the junction) / (reads of its ATSE), summed over the
    group's cells where the ATSE is observed (n > 0); observed zeros count.

    Returns
    -------
    psi, frac_observed
        Junctions × groups tables.
    """
    labels = cell_labels(mdata, groupby, mdata["splicing"].obs_names)
    groups = natural_sort(labels.dropna())
    masks = {g: (labels == g).to_numpy() for g in groups}
    k, n, cells = pooled_counts(mdata, junctions, masks)
    with np.errstate(invalid="ignore", divide="ignore"):
        psi = pd.DataFrame(np.where(n > 0, k / n, np.nan), index=k.index, columns=k.columns)
    frac = cells / np.maximum([m.sum() for m in masks.values()], 1)
    return psi, frac


def top_events_psi(mdata, table: pd.DataFrame, groupby: str = "leiden", n_top: int = 8, min_cells: int = 10):
    """Dot plot of the observed PSI of the top differential junctions of each contrast, per group.

    Parameters
    ----------
    mdata
        MuData with the splicing count layers and the ``groupby`` annotation.
    table
        Per-junction ``splicevi ds`` table (``junction_id``, ``contrast``, ``rank`` or ``proba_ds``).
    groupby
        Cell annotation of the columns.
    n_top
        Junctions per contrast.
    min_cells
        Only junctions whose ATSE is observed in at least this many cells on both sides of the
        contrast are candidates (see :func:`splicevi.pl._counts.well_observed`).
    """
    from ._utils import plt, top_per_contrast

    if table.empty:
        return empty_figure("no differential splicing results")
    table = well_observed(mdata, table, min_cells, id_col="junction_id")
    if table.empty:
        return empty_figure(
            f"no differential junction whose ATSE is observed in ≥ {min_cells} cells per group"
        )
    junctions = top_per_contrast(table, "junction_id", n_top)
    psi, frac = group_psi(mdata, junctions, groupby)
    names = table.drop_duplicates("junction_id").set_index("junction_id")
    labels = [
        f"{names.at[j, 'gene_name']} {j}"
        if "gene_name" in names.columns and pd.notna(names.at[j, "gene_name"])
        else j
        for j in psi.index
    ]
    n_rows, n_cols = psi.shape
    fig, ax = plt.subplots(figsize=(1.6 + 0.45 * n_cols + 2.5, 0.8 + 0.28 * n_rows))
    yy, xx = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    sc = ax.scatter(
        xx.ravel(),
        yy.ravel(),
        c=psi.to_numpy().ravel(),
        s=20 + 180 * frac.to_numpy().ravel(),
        cmap="viridis",
        vmin=0,
        vmax=1,
        edgecolors="0.3",
        linewidths=0.3,
    )
    ax.set_xticks(range(n_cols), psi.columns, rotation=90 if n_cols > 12 else 0)
    ax.set_yticks(range(n_rows), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(groupby)
    ax.set_xlim(-0.6, n_cols - 0.4)
    fig.colorbar(sc, ax=ax, label="mean observed PSI", shrink=0.6)
    for f in (0.1, 0.5, 1.0):
        ax.scatter([], [], s=20 + 180 * f, color="0.7", label=f"{f:.0%}")
    ax.legend(
        title="cells observed",
        frameon=False,
        fontsize="x-small",
        loc="upper left",
        bbox_to_anchor=(1.25, 1.0),
    )
    ax.set_title(
        f"Top {n_top} differential junctions per contrast: observed PSI by {groupby}", fontsize="medium"
    )
    fig.tight_layout()
    return fig


def _labels(mdata, obs_names, groupby: str) -> pd.Series:
    return cell_labels(mdata, groupby, obs_names)
