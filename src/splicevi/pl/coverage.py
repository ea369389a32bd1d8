"""Per-event coverage: reads of the top differential ATSEs per cell, by group of cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from splicevi._labels import natural_sort

from .._constants import EVENT_ID_COLUMN
from ._counts import well_observed
from ._utils import empty_figure, grid, top_per_contrast
from .psi import _labels


def event_reads(mdata, events) -> pd.DataFrame:
    """Cells × events table of ATSE reads (sum of the junction reads of each event)."""
    from splicevi.data.layers import JUNCTION_COUNTS

    spl = mdata["splicing"]
    event_of = spl.var[EVENT_ID_COLUMN].astype(str).to_numpy()
    k = sp.csc_matrix(spl.layers[JUNCTION_COUNTS])
    out = {}
    for e in events:
        cols = np.flatnonzero(event_of == str(e))
        if cols.size == 0:
            raise ValueError(f"event '{e}' not in the data")
        out[str(e)] = np.asarray(k[:, cols].sum(axis=1)).ravel()
    return pd.DataFrame(out, index=spl.obs_names)


def event_coverage(mdata, table: pd.DataFrame, groupby: str = "leiden", n_top: int = 8, min_cells: int = 10):
    """Box plots of the reads of each top ATSE in the cells where it is observed, per group.

    Parameters
    ----------
    mdata
        MuData with the splicing counts and the ``groupby`` annotation.
    table
        Per-ATSE ``splicevi ds`` table (``event_id``, ``contrast``, ``rank`` or ``proba_ds``).
    groupby
        Cell annotation of the boxes.
    n_top
        Events per contrast (at most 24 panels overall).
    min_cells
        Only events observed in at least this many cells on both sides of their contrast are shown.
    """
    if table.empty:
        return empty_figure("no differential splicing results")
    table = well_observed(mdata, table, min_cells)
    if table.empty:
        return empty_figure(f"no differential ATSE observed in ≥ {min_cells} cells per group")
    events = top_per_contrast(table, EVENT_ID_COLUMN, n_top)[:24]
    reads = event_reads(mdata, events)
    labels = _labels(mdata, reads.index, groupby)
    groups = natural_sort(labels.dropna())
    genes = table.drop_duplicates(EVENT_ID_COLUMN).set_index(EVENT_ID_COLUMN)
    fig, axes = grid(len(events), ncols=4, size=(3.6, 2.8))
    for ax, e in zip(axes, events, strict=True):
        data, fracs = [], []
        for g in groups:
            v = reads.loc[(labels == g).to_numpy(), e].to_numpy()
            data.append(v[v > 0] if (v > 0).any() else np.array([np.nan]))
            fracs.append((v > 0).mean() if v.size else 0.0)
        ax.boxplot(data, showfliers=False, widths=0.6)
        for i, d in enumerate(data, start=1):
            jitter = np.random.default_rng(i).uniform(-0.2, 0.2, size=min(d.size, 200))
            ax.scatter(i + jitter, d[:200], s=2, color="tab:blue", alpha=0.4, linewidths=0, rasterized=True)
        ax.set_yscale("log")
        ax.set_xticks(range(1, len(groups) + 1), groups, fontsize=6, rotation=90 if len(groups) > 10 else 0)
        top = ax.get_ylim()[1]
        for i, f in enumerate(fracs, start=1):
            ax.text(i, top, f"{f:.0%}", ha="center", va="bottom", fontsize=5)
        gene = genes.at[e, "gene_name"] if "gene_name" in genes.columns and e in genes.index else None
        ax.set_title(f"{e}" + (f" ({gene})" if isinstance(gene, str) else ""), fontsize="small", pad=10)
        ax.set_ylabel("ATSE reads per cell")
    fig.suptitle(f"Coverage of the top differential ATSEs by {groupby} (observed cells; % observed on top)")
    fig.tight_layout()
    return fig
