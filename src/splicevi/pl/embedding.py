"""UMAP scatter plots coloured by annotations, QC metrics or the observed PSI of junctions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from splicevi._labels import natural_sort

from ._utils import categorical_colors, empty_figure, grid

#: QC columns shown by ``color=["qc"]``, when present.
QC_COLUMNS = ("n_junction_reads", "n_atse_observed", "total_counts", "n_genes_detected")
_COUNT_LIKE = {"n_junction_reads", "total_counts"}


def umap(cells, color: Sequence[str], basis: tuple[str, str] = ("umap1", "umap2"), max_categories: int = 60):
    """One UMAP panel per annotation.

    Parameters
    ----------
    cells
        A MuData with ``obsm["X_umap"]`` (as written by ``splicevi cluster``), or a table with one row
        per cell, the UMAP coordinates (columns ``basis``) and the annotations (``cells.tsv``).
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
    if hasattr(cells, "obsm"):  # a MuData: the same per-cell table that `splicevi cluster` writes
        from splicevi.tl.qc import cell_table

        cells = cell_table(cells)
    missing = [b for b in basis if b not in cells.columns]
    if missing:
        raise ValueError(f"cell table lacks UMAP coordinates {missing}")
    keys: list[str] = []
    for c in color:
        if c == "qc":
            keys += [q for q in QC_COLUMNS if q in cells.columns]
        elif c == "annotations":
            keys += [
                a
                for a in cells.columns
                if a not in keys
                and a not in ("leiden", *basis)
                and ":" not in str(a)
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
                ax.scatter(
                    x[m], y[m], s=size, color=col, label=f"{level} ({m.sum()})", linewidths=0, rasterized=True
                )
            if len(levels) <= max_categories:
                ax.legend(
                    frameon=False,
                    fontsize="small",
                    markerscale=max(1.0, 12 / size),
                    loc="center left",
                    bbox_to_anchor=(1.0, 0.5),
                    ncols=1 if len(levels) <= 15 else 2,
                )
        else:
            v = values.to_numpy(dtype=float)
            label = key
            if key in _COUNT_LIKE:
                v, label = np.log10(1 + v), f"log10(1 + {key})"
            order = np.argsort(np.nan_to_num(v, nan=-np.inf))
            sc = ax.scatter(
                x[order], y[order], c=v[order], s=size, cmap="viridis", linewidths=0, rasterized=True
            )
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


def umap_psi(mdata, junctions: Sequence[str], basis: str = "X_umap", max_panels: int = 12):
    """UMAP coloured by the observed PSI of each junction; cells that do not observe its ATSE in grey.

    An unobserved cell (no read in the ATSE, n = 0) has no PSI: it is drawn as such, small and grey
    underneath, never as PSI 0. Observed cells are coloured by k / n on a fixed 0–1 scale.

    Parameters
    ----------
    mdata
        MuData with the splicing counts and ``obsm[basis]``.
    junctions
        Junction ids (``mdata["splicing"].var_names``), one panel each.
    basis
        ``obsm`` key of the 2-D embedding.
    max_panels
        At most this many junctions (the first ones).
    """
    from ._counts import junction_and_event_counts

    if basis not in mdata.obsm:
        raise ValueError(f"no embedding obsm['{basis}'] (available: {', '.join(mdata.obsm) or 'none'})")
    junctions = [str(j) for j in junctions][:max_panels]
    if not junctions:
        return empty_figure("no junction to show")
    spl = mdata["splicing"]
    k, n = junction_and_event_counts(mdata, junctions)
    rows = mdata.obs_names.get_indexer(spl.obs_names)
    xy = np.asarray(mdata.obsm[basis])[rows, :2]
    var = spl.var
    fig, axes = grid(len(junctions), ncols=min(len(junctions), 3), size=(4.4, 3.8))
    size = float(np.clip(3000 / max(len(xy), 1), 2, 30))
    sc = None
    for i, (ax, j) in enumerate(zip(axes, junctions, strict=True)):
        kj = k[:, i].toarray().ravel()
        nj = n[:, i].toarray().ravel()
        seen = nj > 0
        psi = kj[seen] / nj[seen]
        ax.scatter(
            xy[~seen, 0],
            xy[~seen, 1],
            s=size * 0.5,
            color="0.85",
            linewidths=0,
            rasterized=True,
            label=f"not observed ({(~seen).sum()})",
        )
        order = np.argsort(psi, kind="stable")
        sc = ax.scatter(
            xy[seen, 0][order],
            xy[seen, 1][order],
            c=psi[order],
            s=size,
            cmap="viridis",
            vmin=0,
            vmax=1,
            linewidths=0,
            rasterized=True,
        )
        gene = var.at[j, "gene_name"] if "gene_name" in var.columns else None
        ax.set_title(
            f"{gene + ' ' if isinstance(gene, str) else ''}{j}\nobserved in {seen.sum()} of {seen.size} cells",
            fontsize="small",
        )
        ax.legend(frameon=False, fontsize="x-small", loc="best", markerscale=2)
        ax.set_xticks([])
        ax.set_yticks([])
        if i % 3 == 0:
            ax.set_ylabel("UMAP2")
        ax.set_xlabel("UMAP1")
    fig.colorbar(sc, ax=list(axes), label="observed PSI (k / n)", shrink=0.6)
    return fig


def top_junctions_umap(mdata, table: pd.DataFrame, n_top: int = 1, min_cells: int = 10, max_panels: int = 9):
    """:func:`umap_psi` of the top ``n_top`` differential junctions of each contrast (well-observed ATSEs only)."""
    from ._counts import well_observed
    from ._utils import top_per_contrast

    if table.empty:
        return empty_figure("no differential splicing results")
    table = well_observed(mdata, table, min_cells, id_col="junction_id")
    if table.empty:
        return empty_figure(
            f"no differential junction whose ATSE is observed in ≥ {min_cells} cells per group"
        )
    return umap_psi(mdata, top_per_contrast(table, "junction_id", n_top)[:max_panels], max_panels=max_panels)
