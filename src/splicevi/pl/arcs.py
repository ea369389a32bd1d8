"""Arc (sashimi-style) plots: the junctions of an ATSE as arcs, with pooled reads and PSI per group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from splicevi._labels import cell_labels, natural_sort

from ._counts import contrast_masks, event_junctions, pooled_counts, well_observed
from ._utils import empty_figure, plt, top_per_contrast

#: Most rows (events) in :func:`top_event_arcs`.
MAX_ROWS = 12


def arcs(mdata, event_id: str, groupby: str = "leiden", groups: Sequence[str] | None = None):
    """Arc plot of one ATSE: one panel per group of cells, stacked on a shared genomic axis.

    Each junction is an arc from its donor to its acceptor; the arc's width grows with the reads of
    the junction pooled over the group's cells, and its label gives those reads and the pooled PSI
    (junction reads / ATSE reads over the cells observing the ATSE).

    Parameters
    ----------
    mdata
        MuData with the splicing counts and the ``groupby`` annotation.
    event_id
        The ATSE (``mdata["splicing"].var["event_id"]``).
    groupby
        Cell annotation defining the groups.
    groups
        Groups to show, in order (default: all, naturally sorted).
    """
    labels = cell_labels(mdata, groupby, mdata["splicing"].obs_names)
    groups = natural_sort(labels.dropna()) if groups is None else [str(g) for g in groups]
    unknown = [g for g in groups if not (labels == g).any()]
    if unknown:
        raise ValueError(f"group(s) {unknown} of '{groupby}' have no cells")
    masks = {g: (labels == g).to_numpy() for g in groups}
    fig, axes = plt.subplots(len(groups), 1, figsize=(6.5, 1.9 * len(groups) + 0.4), sharex=True, squeeze=False)
    draw_event(list(axes[:, 0]), mdata, event_id, masks)
    fig.suptitle(event_title(mdata, event_id), fontsize="medium")
    fig.tight_layout()
    return fig


def top_event_arcs(mdata, table: pd.DataFrame, n_top: int = 2, min_cells: int = 10, max_rows: int = MAX_ROWS):
    """Arc plots of the top differential ATSEs of each contrast: one row per event, its two groups side by side.

    Parameters
    ----------
    mdata
        MuData with the splicing counts and the contrasts' annotations.
    table
        ``splicevi ds`` table (per ATSE or per junction) with ``contrast``, ``groupby``, ``group1``,
        ``group2``, ``event_id`` and ``rank`` or ``proba_ds``.
    n_top
        Events per contrast.
    min_cells
        Only events observed in at least this many cells on both sides of their contrast.
    max_rows
        At most this many events overall (the first contrasts first).
    """
    needed = {"contrast", "groupby", "group1", "group2", "event_id"}
    missing = needed - set(table.columns)
    if missing:
        raise ValueError(f"DS table lacks columns {sorted(missing)} (use a `splicevi ds` table)")
    if table.empty:
        return empty_figure("no differential splicing results")
    table = well_observed(mdata, table, min_cells)
    if table.empty:
        return empty_figure(f"no differential ATSE observed in ≥ {min_cells} cells per group")
    rows = []
    for contrast, t in table.groupby("contrast", sort=False):
        for e in top_per_contrast(t, "event_id", n_top):
            rows.append((contrast, t.iloc[0], e))
    rows = rows[:max_rows]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.1 * len(rows) + 0.3), squeeze=False)
    for (contrast, first, e), pair in zip(rows, axes, strict=True):
        labels = cell_labels(mdata, str(first["groupby"]), mdata["splicing"].obs_names)
        m1, m2 = contrast_masks(labels, first["group1"], first["group2"])
        names = {f"{first['groupby']} {first['group1']}": m1, f"{first['groupby']} {first['group2']}": m2}
        draw_event(list(pair), mdata, e, names)
        group_title = pair[0].get_title()
        pair[0].set_title("")
        pair[0].set_title(f"{contrast}: {event_title(mdata, e)}\n{group_title}", fontsize="small", loc="left")
    fig.tight_layout()
    return fig


def event_title(mdata, event_id: str) -> str:
    """``event (gene) chrom:start-end(strand)`` of an ATSE."""
    from splicevi.tl.annotate import junction_coordinates

    var = mdata["splicing"].var
    coords = junction_coordinates(var.loc[event_junctions(mdata, event_id)])
    gene = [g for g in coords["gene_name"].dropna().astype(str).unique() if g.strip()]
    where = f"{coords['chrom'].iloc[0]}:{coords['start'].min()}-{coords['end'].max()}({coords['strand'].iloc[0]})"
    return f"{event_id}" + (f" ({','.join(gene)})" if len(gene) else "") + f" {where}"


def draw_event(axes, mdata, event_id: str, masks: dict[str, np.ndarray]) -> pd.DataFrame:
    """Draw the junctions of one ATSE in each group (one axis per entry of ``masks``).

    Arc widths share one scale across the axes so groups compare by eye. Returns the pooled
    junction reads (junctions × groups) that the labels show.
    """
    from splicevi.tl.annotate import junction_coordinates

    junctions = event_junctions(mdata, event_id)
    coords = junction_coordinates(mdata["splicing"].var.loc[junctions])
    k, n, cells = pooled_counts(mdata, junctions, masks)
    kmax = max(float(k.to_numpy().max()), 1.0)
    lengths = (coords["end"] - coords["start"]).to_numpy(dtype=float)
    lo, hi = float(coords["start"].min()) - 1, float(coords["end"].max())
    pad = 0.04 * (hi - lo + 1)
    sites = np.unique(np.r_[coords["start"].to_numpy() - 1, coords["end"].to_numpy()])
    for ax, group in zip(axes, masks, strict=True):
        ax.axhline(0, color="0.4", lw=0.8, zorder=1)
        ax.vlines(sites, -0.08, 0.08, color="0.2", lw=1.5, zorder=2)  # splice sites (exon boundaries)
        for i, j in enumerate(junctions):
            s, e = float(coords.at[j, "start"]) - 1, float(coords.at[j, "end"])
            # Alternate above / below, taller for longer introns: arcs and labels of one ATSE stay apart.
            side = 1.0 if i % 2 == 0 else -1.0
            height = side * (0.35 + 0.6 * lengths[i] / max(lengths.max(), 1.0))
            t = np.linspace(0, np.pi, 60)
            reads = float(k.at[j, group])
            psi = reads / n.at[j, group] if n.at[j, group] > 0 else np.nan
            ax.plot((s + e) / 2 + (e - s) / 2 * np.cos(t), height * np.sin(t), color="tab:red" if side > 0 else "tab:blue",
                    lw=0.4 + 6.0 * reads / kmax, alpha=0.85, solid_capstyle="butt", zorder=3)
            text = f"{int(reads)} ({psi:.0%})" if np.isfinite(psi) else "0 (unobserved)"
            ax.text((s + e) / 2, height, text, ha="center", va="bottom" if side > 0 else "top", fontsize=6.5,
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8), zorder=4)
        n_cells = int(masks[group].sum())
        n_obs = int(cells[group].max())
        ax.set_title(f"{group}: {n_obs} of {n_cells} cells observe it, {int(n[group].max())} ATSE reads", fontsize="small")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-1.35, 1.35)
        ax.set_yticks([])
        for spine in ("left", "right", "top"):
            ax.spines[spine].set_visible(False)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.tick_params(axis="x", labelsize=6)
    axes[-1].set_xlabel(f"{coords['chrom'].iloc[0]} position (labels: pooled junction reads (PSI))", fontsize="small")
    return k
