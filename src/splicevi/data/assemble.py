"""Masking and assembly of the model-ready MuData (see the data contract in docs/ARCHITECTURE.md).

``mdata["splicing"]`` holds the junction counts k (CSR layer ``cell_by_junction_matrix``; n, PSI
and the mask are derived from k and ``event_id`` where needed) or, with ``published_layout``, the
four CSR layers of :func:`splicevi.data.layers.splicing_layers` (k, n, k/n and the observed mask
n > 0) with ``X`` = ``junc_ratio``; ``mdata["rna"]`` holds raw gene
counts (CSR) and, when transcript lengths are given, a ``length_norm`` layer. Files in the reference
implementation's layout (dense layers, a missing mask) are brought into this layout by
:func:`harmonize_splicing`.
"""

from __future__ import annotations

import datetime as _dt
import os

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from splicevi import __version__

from .._constants import EVENT_ID_COLUMN
from ._tables import InputError, count_totals
from .barcodes import match_cells
from .layers import (
    ATSE_COUNTS,
    JUNCTION_COUNTS,
    JUNCTION_RATIO,
    PSI_MASK,
    atse_totals,
    event_codes,
    junction_to_event_matrix,
    splicing_layers,
)

SPLICING_VAR_COLUMNS = [
    "chrom",
    "start",
    "end",
    "strand",
    "motif",
    "annotated",
    EVENT_ID_COLUMN,
    "gene_id",
    "gene_name",
]


def read_events(path: str | os.PathLike) -> pd.DataFrame:
    """Read an ``events.tsv`` written by ``splicevi atse``, checking its columns."""
    fix = "pass the events.tsv written by `splicevi atse`"
    try:
        ev = pd.read_csv(
            path,
            sep="\t",
            dtype={
                "junction_id": str,
                EVENT_ID_COLUMN: str,
                "chrom": str,
                "strand": str,
                "gene_id": str,
                "gene_name": str,
            },
        )
    except pd.errors.EmptyDataError:
        raise InputError(path, "the events table is empty", fix, line=1) from None
    except pd.errors.ParserError as err:
        raise InputError(path, f"malformed events table ({err})", fix) from None
    missing = {"junction_id", EVENT_ID_COLUMN} - set(ev.columns)
    if missing:
        raise InputError(path, f"missing column(s) {sorted(missing)}", fix, line=1)
    if ev.empty:
        raise InputError(
            path,
            "no events (every junction was filtered out)",
            "relax the `splicevi atse` filters (e.g. --min-reads, --min-cells)",
            line=2,
        )
    dup = ev["junction_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.nonzero(dup)[0][0])
        raise InputError(path, f"junction {ev['junction_id'].iloc[i]} listed twice", fix, line=i + 2)
    return ev


def read_transcript_lengths(path: str | os.PathLike) -> pd.Series:
    """Gene lengths for ``length_norm``: TSV with header ``gene_id``, ``length``."""
    fix = "write a TSV with header 'gene_id<TAB>length' (effective transcript length per gene, in bases)"
    try:
        df = pd.read_csv(path, sep="\t")
    except pd.errors.EmptyDataError:
        raise InputError(path, "the transcript length table is empty", fix, line=1) from None
    if not {"gene_id", "length"} <= set(df.columns):
        raise InputError(path, f"columns are {list(df.columns)}", fix, line=1)
    length = pd.to_numeric(df["length"], errors="coerce")
    bad = (length.isna() | (length <= 0)).to_numpy()
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(path, f"length {df['length'].iloc[i]!r} is not a positive number", fix, line=i + 2)
    return (
        pd.Series(length.to_numpy(dtype=np.float64), index=df["gene_id"].astype(str)).groupby(level=0).first()
    )


def length_normalize(
    counts: sp.csr_matrix, gene_ids: pd.Index, lengths: pd.Series
) -> tuple[sp.csr_matrix, int]:
    """``counts / (length / median length)`` per gene; genes without a length keep their counts.

    Returns the CSR layer and the number of genes without a length.
    """
    lens = lengths.reindex(gene_ids).to_numpy()
    missing = int(np.isnan(lens).sum())
    med = np.nanmedian(lens) if missing < len(lens) else 1.0
    factor = np.where(np.isnan(lens), 1.0, med / np.where(np.isnan(lens), 1.0, lens)).astype(np.float32)
    out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    out.data *= factor[out.indices]
    return out, missing


def assemble(
    junctions: ad.AnnData,
    events: pd.DataFrame,
    genes: ad.AnnData | None = None,
    min_cell_reads: int = 0,
    transcript_lengths: pd.Series | None = None,
    events_source: str = "events table",
    provenance: dict | None = None,
    published_layout: bool = False,
) -> tuple[md.MuData, dict]:
    """Build the model-ready MuData.

    Parameters
    ----------
    junctions
        Cells × junctions counts from ``splicevi ingest``.
    events
        Junction → ATSE table from ``splicevi atse`` (``junction_id``, ``event_id``, ...).
    genes
        Cells × genes counts; the cells are matched to the junction cells.
    min_cell_reads
        Drop cells with fewer junction reads (over the ATSE junctions). Cells with no reads in any
        modality are always dropped.
    transcript_lengths
        Gene lengths (index gene id) for the ``length_norm`` layer.
    events_source
        Name of the events file, for messages.
    provenance
        Extra entries for ``uns["splicevi_provenance"]``.
    published_layout
        Also store n (``cell_by_cluster_matrix``), PSI (``junc_ratio``, then also ``X``) and the mask
        (``psi_mask``), the reference implementation's four-layer layout. By default only the
        junction counts k are stored (``X`` empty): the model reads nothing else, the other layers
        follow from k and ``event_id`` (:func:`splicevi.data.layers.layer_or_derived`), and at
        scale they are three quarters of the file and of the memory it takes to load.

    Returns
    -------
    mdata, report
    """
    missing = ~events["junction_id"].isin(junctions.var_names)
    if missing.any():
        i = int(np.nonzero(missing.to_numpy())[0][0])
        raise InputError(
            events_source,
            f"{int(missing.sum())} junction(s) are not in the junctions file, e.g. "
            f"{events['junction_id'].iloc[i]}",
            "make events.tsv with `splicevi atse` from the same junctions.h5ad",
            line=i + 2,
        )
    report: dict = {"n_cells_in": int(junctions.n_obs)}
    jun = junctions[:, events["junction_id"].to_numpy()]
    match_info = None
    if genes is not None:
        jun, genes, match = match_cells(jun, genes)
        match_info = match.as_dict()
        report["barcodes"] = match_info
    k = sp.csr_matrix(jun.X, dtype=np.float32)
    reads = count_totals(k, axis=1)
    keep = reads >= max(min_cell_reads, 0)
    if genes is None or min_cell_reads > 0:
        keep &= reads > 0
    else:
        keep &= (reads > 0) | (np.asarray(genes.X.sum(axis=1)).ravel() > 0)
    report["n_cells_dropped_min_reads"] = int((~keep).sum())
    if not keep.any():
        raise InputError(
            events_source,
            f"no cell has ≥ {max(min_cell_reads, 1)} reads on the ATSE junctions",
            "lower --min-cell-reads or relax the `splicevi atse` filters",
        )
    jun = jun[keep].copy()
    k = k[keep]
    codes, _ = event_codes(events[EVENT_ID_COLUMN])
    k.eliminate_zeros()
    totals = atse_totals(k, codes)  # n: for the observed-entry statistics (and the published layout)

    var = events.set_index("junction_id").copy()
    var.index.name = "junction_id"
    for col in SPLICING_VAR_COLUMNS:
        if col not in var:
            var[col] = jun.var[col].to_numpy() if col in jun.var else ""
    for col in ("gene_id", "gene_name"):
        var[col] = var[col].fillna("").astype(str)
    var["n_cells_observed"] = np.bincount(totals.indices, minlength=len(var)).astype(np.int64)
    var["n_cells_detected"] = np.bincount(k.indices, minlength=len(var)).astype(np.int64)
    obs = jun.obs.copy()
    if "batch" not in obs:
        obs["batch"] = "batch0"
    n_events = int(codes.max()) + 1
    n_observed_entries = int(totals.nnz)
    if published_layout:
        layers = splicing_layers(k, codes)
        x = layers[JUNCTION_RATIO].copy()
    else:
        # X is the junction counts (the same matrix as the layer, not a copy): scanpy reads X
        # (calculate_qc_metrics, umap coloured by a junction); written once (_io.write_x_as_layer).
        layers, x = {JUNCTION_COUNTS: k}, k
    del totals
    ev_per_cell = _events_observed(k, codes, n_events)
    obs["n_junction_reads"] = count_totals(k, axis=1)
    obs["n_junctions_detected"] = np.diff(k.indptr).astype(np.int64)
    obs["n_events_observed"] = ev_per_cell
    obs["frac_events_observed"] = ev_per_cell / n_events
    splicing = ad.AnnData(
        X=x,
        obs=obs,
        var=var[SPLICING_VAR_COLUMNS + [c for c in var.columns if c not in SPLICING_VAR_COLUMNS]],
        layers=layers,
    )
    mods = {"splicing": splicing}
    if genes is not None:
        g = genes[keep].copy()
        g.X = sp.csr_matrix(g.X, dtype=np.float32)
        g.obs["n_counts"] = count_totals(g.X, axis=1)
        g.obs["n_genes"] = np.diff(g.X.indptr)
        if transcript_lengths is not None:
            g.layers["length_norm"], n_no_len = length_normalize(g.X, g.var_names, transcript_lengths)
            report["genes_without_length"] = n_no_len
        mods["rna"] = g
    with md.set_options(pull_on_update=False):  # obs columns are set explicitly below
        mdata = md.MuData(mods)
    for col in ("batch", "n_junction_reads", "n_events_observed", "frac_events_observed"):
        mdata.obs[col] = splicing.obs[col].reindex(mdata.obs_names).to_numpy()
    if genes is not None:
        for col in ("n_counts", "n_genes"):
            mdata.obs[col] = mods["rna"].obs[col].reindex(mdata.obs_names).to_numpy()
    mdata.obs["batch"] = pd.Categorical(mdata.obs["batch"].astype(str))
    report.update(
        {
            "n_cells": int(mdata.n_obs),
            "n_junctions": int(splicing.n_vars),
            "n_events": n_events,
            "n_genes": int(genes.n_vars) if genes is not None else 0,
            "frac_observed": float(n_observed_entries / max(k.shape[0] * k.shape[1], 1)),
            "layout": "published" if published_layout else "lean",
            "frac_cell_event_observed": float(ev_per_cell.sum() / max(n_events * mdata.n_obs, 1)),
        }
    )
    mdata.uns["splicevi_provenance"] = clean_uns(
        {
            "version": __version__,
            "versions": _versions(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "assemble": {
                "min_cell_reads": min_cell_reads,
                "length_norm": transcript_lengths is not None,
                **report,
            },
            **(provenance or {}),
        }
    )
    return mdata, report


def _events_observed(k: sp.csr_matrix, codes: np.ndarray, n_events: int) -> np.ndarray:
    """Number of observed ATSEs per cell: non-zeros per row of the cells × events read totals."""
    per_event = (k @ junction_to_event_matrix(codes, n_events)).tocsr()
    per_event.eliminate_zeros()
    return np.diff(per_event.indptr).astype(np.int64)


def _versions() -> dict:
    """Versions of the packages that shaped the file."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"splicevi": __version__}
    for pkg in ("anndata", "mudata", "numpy", "scipy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover - all are dependencies
            out[pkg] = ""
    return out


def clean_uns(value):
    """Make a nested dict storable in ``.uns`` (None → "", tuples → lists, numpy scalars → python)."""
    if isinstance(value, dict):
        return {str(k): clean_uns(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_uns(v) for v in value] if value else []
    if value is None:
        return ""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def harmonize_splicing(adata: ad.AnnData, event_key: str = EVENT_ID_COLUMN) -> ad.AnnData:
    """Bring a splicing AnnData into the contract layout, in place, and return it.

    Every layer becomes float32 CSR (the reference implementation's files store them dense). A file
    with ``cell_by_junction_matrix`` and ``var[event_key]`` needs nothing else and gets nothing else:
    n, PSI and the mask are derived where needed (:func:`splicevi.data.layers.layer_or_derived`).
    A file without junction counts but with ATSE totals and no mask gets the mask ``n > 0``. When a
    ``junc_ratio`` layer is stored, ``X`` is set to it.
    """
    for name in list(adata.layers.keys()):
        if not sp.issparse(adata.layers[name]):
            adata.layers[name] = sp.csr_matrix(np.asarray(adata.layers[name], dtype=np.float32))
        else:
            adata.layers[name] = sp.csr_matrix(adata.layers[name], dtype=np.float32)
    have = set(adata.layers.keys())
    if JUNCTION_COUNTS not in have and ATSE_COUNTS in have and PSI_MASK not in have:
        m = adata.layers[ATSE_COUNTS].copy()
        m.data = (m.data > 0).astype(np.float32)
        m.eliminate_zeros()
        adata.layers[PSI_MASK] = m
    if JUNCTION_RATIO in adata.layers:
        adata.X = adata.layers[JUNCTION_RATIO].copy()
    return adata


__all__ = ["assemble", "harmonize_splicing", "read_events", "read_transcript_lengths"]
