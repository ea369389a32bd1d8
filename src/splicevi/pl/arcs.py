"""Arc (sashimi-style) plots: the junctions of an ATSE as arcs, with pooled reads and PSI per group."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from splicevi._labels import cell_labels, natural_sort

from .._constants import EVENT_ID_COLUMN
from ._counts import contrast_masks, event_junctions, pooled_counts, well_observed
from ._utils import empty_figure, plt, top_per_contrast

#: Most rows (events) in :func:`top_event_arcs`.
MAX_ROWS = 12


def arcs(mdata, event_id: str, groupby: str = "leiden", groups: Sequence[str] | None = None, gtf=None):
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
    gtf
        Optional GTF: its exons in the ATSE's region are drawn as a track under the arcs.
    """
    labels = cell_labels(mdata, groupby, mdata["splicing"].obs_names)
    groups = natural_sort(labels.dropna()) if groups is None else [str(g) for g in groups]
    unknown = [g for g in groups if not (labels == g).any()]
    if unknown:
        raise ValueError(f"group(s) {unknown} of '{groupby}' have no cells")
    masks = {g: (labels == g).to_numpy() for g in groups}
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(8.5, 1.9 * len(groups) + 0.4), sharex=True, squeeze=False
    )
    draw_event(list(axes[:, 0]), mdata, event_id, masks, exons=_exons(mdata, [event_id], gtf))
    fig.suptitle(event_title(mdata, event_id), fontsize="medium")
    fig.tight_layout()
    return fig


def top_event_arcs(
    mdata, table: pd.DataFrame, n_top: int = 2, min_cells: int = 10, max_rows: int = MAX_ROWS, gtf=None
):
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
    gtf
        Optional GTF: exons in each ATSE's region are drawn as a track under its arcs.
    """
    needed = {"contrast", "groupby", "group1", "group2", EVENT_ID_COLUMN}
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
        for e in top_per_contrast(t, EVENT_ID_COLUMN, n_top):
            rows.append((contrast, t.iloc[0], e))
    rows = rows[:max_rows]
    exons = _exons(mdata, [e for _, _, e in rows], gtf)
    fig, axes = plt.subplots(len(rows), 2, figsize=(15, 2.3 * len(rows) + 0.3), squeeze=False)
    for (contrast, first, e), pair in zip(rows, axes, strict=True):
        labels = cell_labels(mdata, str(first["groupby"]), mdata["splicing"].obs_names)
        m1, m2 = contrast_masks(labels, first["group1"], first["group2"])
        names = {f"{first['groupby']} {first['group1']}": m1, f"{first['groupby']} {first['group2']}": m2}
        draw_event(list(pair), mdata, e, names, exons=_event_exons(mdata, e, exons))
        group_title = pair[0].get_title()
        pair[0].set_title("")
        pair[0].set_title(f"{contrast}: {event_title(mdata, e)}\n{group_title}", fontsize="small", loc="left")
    fig.tight_layout()
    return fig


def _region(mdata, event_id: str) -> tuple[str, int, int]:
    from splicevi.tl.annotate import junction_coordinates

    coords = junction_coordinates(mdata["splicing"].var.loc[event_junctions(mdata, event_id)])
    return str(coords["chrom"].iloc[0]), int(coords["start"].min()) - 1, int(coords["end"].max()) + 1


def _exons(mdata, events, gtf) -> pd.DataFrame | None:
    """Exons of ``gtf`` in the regions of ``events`` (None without a GTF)."""
    if gtf is None:
        return None
    from splicevi.data.exons import read_exons

    return read_exons(gtf, [_region(mdata, e) for e in events])


def _event_exons(mdata, event_id: str, exons: pd.DataFrame | None) -> pd.DataFrame | None:
    if exons is None:
        return None
    chrom, start, end = _region(mdata, event_id)
    return exons[(exons["chrom"] == chrom) & (exons["start"] <= end) & (exons["end"] >= start)]


def event_title(mdata, event_id: str) -> str:
    """``event (gene) chrom:start-end(strand)`` of an ATSE."""
    from splicevi.tl.annotate import junction_coordinates

    var = mdata["splicing"].var
    coords = junction_coordinates(var.loc[event_junctions(mdata, event_id)])
    gene = [g for g in coords["gene_name"].dropna().astype(str).unique() if g.strip()]
    where = (
        f"{coords['chrom'].iloc[0]}:{coords['start'].min()}-{coords['end'].max()}({coords['strand'].iloc[0]})"
    )
    return f"{event_id}" + (f" ({','.join(gene)})" if len(gene) else "") + f" {where}"


def _place_labels(
    xs: np.ndarray, ys: np.ndarray, sides: np.ndarray, width: float, height: float
) -> np.ndarray:
    """Label heights so no two label boxes (``width`` × ``height``, data units) overlap.

    Labels start at their arc's apex and are pushed away from the axis line (up above it, down below
    it) until their box is clear of every label placed before (placed from the axis outwards).
    """
    out = ys.astype(float).copy()
    placed: list[tuple[float, float]] = []
    for i in np.argsort(np.abs(ys), kind="stable"):
        y = out[i]
        while any(abs(xs[i] - px) < width and abs(y - py) < height for px, py in placed):
            y += sides[i] * height
        out[i] = y
        placed.append((xs[i], y))
    return out


def draw_exons(ax, exons: pd.DataFrame, y: float = -1.0, height: float = 0.14) -> None:
    """The annotated exons (from a GTF) as grey boxes on a track at ``y``, one row for all transcripts."""
    from matplotlib.patches import Rectangle

    for start, end in exons[["start", "end"]].drop_duplicates().itertuples(index=False):
        ax.add_patch(
            Rectangle(
                (start - 1, y - height / 2),
                end - start + 1,
                height,
                fc="0.6",
                ec="0.35",
                lw=0.4,
                alpha=0.6,
                zorder=1,
            )
        )
    ax.text(
        0.0,
        y,
        "GTF exons ",
        transform=ax.get_yaxis_transform(),
        ha="right",
        va="center",
        fontsize=5.5,
        color="0.35",
    )


def draw_event(
    axes, mdata, event_id: str, masks: dict[str, np.ndarray], exons: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Draw the junctions of one ATSE in each group (one axis per entry of ``masks``).

    Each junction has its own colour (the same in every panel) and a number; the legend of each panel
    gives the number, the junction and its pooled reads and PSI in that group. Arc widths share one
    scale across the axes so groups compare by eye; numbers never overlap (:func:`_place_labels`).
    ``exons`` (:func:`splicevi.data.exons.read_exons`) adds an exon track under the arcs. Returns the
    pooled junction reads (junctions × groups) that the legends show.
    """
    from matplotlib.lines import Line2D

    from splicevi.tl.annotate import junction_coordinates

    junctions = event_junctions(mdata, event_id)
    coords = junction_coordinates(mdata["splicing"].var.loc[junctions])
    k, n, cells = pooled_counts(mdata, junctions, masks)
    kmax = max(float(k.to_numpy().max()), 1.0)
    lengths = (coords["end"] - coords["start"]).to_numpy(dtype=float)
    lo, hi = float(coords["start"].min()) - 1, float(coords["end"].max())
    pad = 0.04 * (hi - lo + 1)
    sites = np.unique(np.r_[coords["start"].to_numpy() - 1, coords["end"].to_numpy()])
    colours = plt.get_cmap("tab10").colors
    # Alternate above / below, taller for longer introns: arcs of one ATSE stay apart.
    sides = np.where(np.arange(len(junctions)) % 2 == 0, 1.0, -1.0)
    heights = sides * (0.3 + 0.5 * lengths / max(lengths.max(), 1.0))
    mids = np.array([(float(coords.at[j, "start"]) - 1 + float(coords.at[j, "end"])) / 2 for j in junctions])
    label_y = _place_labels(mids, heights, sides, width=0.06 * (hi - lo + 2 * pad), height=0.17)
    span = max(1.35, float(np.abs(label_y).max()) + 0.2)
    track = exons is not None and len(exons) > 0
    for ax, group in zip(axes, masks, strict=True):
        ax.axhline(0, color="0.4", lw=0.8, zorder=1)
        ax.vlines(sites, -0.08, 0.08, color="0.2", lw=1.5, zorder=2)  # splice sites (exon boundaries)
        handles = []
        for i, j in enumerate(junctions):
            s, e = float(coords.at[j, "start"]) - 1, float(coords.at[j, "end"])
            t = np.linspace(0, np.pi, 60)
            reads = float(k.at[j, group])
            psi = reads / n.at[j, group] if n.at[j, group] > 0 else np.nan
            colour = colours[i % len(colours)]
            ax.plot(
                (s + e) / 2 + (e - s) / 2 * np.cos(t),
                heights[i] * np.sin(t),
                color=colour,
                lw=0.4 + 6.0 * reads / kmax,
                alpha=0.85,
                solid_capstyle="butt",
                zorder=3,
            )
            ax.text(
                mids[i],
                label_y[i],
                str(i + 1),
                ha="center",
                va="center",
                fontsize=6.5,
                color=colour,
                fontweight="bold",
                bbox=dict(boxstyle="round,pad=0.12", fc="white", ec=colour, lw=0.5),
                zorder=4,
            )
            value = f"{int(reads)} reads ({psi:.0%})" if np.isfinite(psi) else "0 reads (unobserved)"
            handles.append(Line2D([], [], color=colour, lw=2, label=f"{i + 1}: {j}  {value}"))
        if track:
            draw_exons(ax, exons, y=-span + 0.12)
        n_cells = int(masks[group].sum())
        n_obs = int(cells[group].max())
        ax.set_title(
            f"{group}: {n_obs} of {n_cells} cells observe it, {int(n[group].max())} ATSE reads",
            fontsize="small",
        )
        ax.legend(
            handles=handles,
            fontsize=5.5,
            frameon=False,
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            title="junction: pooled reads (PSI)",
            title_fontsize=5.5,
        )
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(-span - (0.1 if track else 0), span)
        ax.set_yticks([])
        for spine in ("left", "right", "top"):
            ax.spines[spine].set_visible(False)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.tick_params(axis="x", labelsize=6)
    axes[-1].set_xlabel(
        f"{coords['chrom'].iloc[0]} position (arc width: pooled junction reads)", fontsize="small"
    )
    return k
