"""Merge per-sample ingest outputs (cells × junctions, cells × genes) into one cohort file.

Cell ids become ``<sample>_<barcode>`` for every sample (see :mod:`splicevi.data.samples`), so the
same barcode in two channels stays two cells. Junctions with identical coordinates
(chrom/start/end/strand, i.e. the same ``junction_id``) are one column; a junction absent from a
sample is zero there (the matrix stays sparse). Gene counts must cover the same gene ids in every
sample (their order may differ). The sample sheet's free columns become ``obs`` columns; ``batch`` is
the sheet's ``batch`` column when it has one, else the sample id.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .samples import SEPARATOR, annotation_columns, cell_ids

#: Junction annotation columns recomputed after the merge (they are sums over cells).
_SUM_COLUMNS = ("total_reads", "n_cells")


def _prefixed_obs(adata: ad.AnnData, sample: str, row: pd.Series, free: list[str], has_batch: bool) -> pd.DataFrame:
    obs = pd.DataFrame(index=pd.Index(cell_ids(sample, adata.obs_names), name=None))
    obs["sample"] = sample
    obs["barcode"] = adata.obs_names.to_numpy()
    for col in free:
        obs[col] = row[col] if row[col] is not None else ""
    if not has_batch:
        obs["batch"] = sample
    return obs


def merge_junctions(parts: list[tuple[str, ad.AnnData]], sheet: pd.DataFrame) -> tuple[ad.AnnData, dict]:
    """Union the junctions of several samples; rows are the samples' cells in sheet order.

    Parameters
    ----------
    parts
        ``(sample id, cells × junctions AnnData)`` from ``splicevi ingest``, one per sample.
    sheet
        The sample sheet (:func:`~splicevi.data.samples.read_sample_sheet`), for the annotations.

    Returns
    -------
    merged, provenance
        ``provenance`` holds per sample its input paths, cells, junctions and reads, and its ingest notes.
    """
    free = annotation_columns(sheet)
    has_batch = "batch" in free
    union = pd.Index(pd.unique(np.concatenate([p.var_names.to_numpy() for _, p in parts])))
    var_parts = [p.var.drop(columns=[c for c in _SUM_COLUMNS if c in p.var]) for _, p in parts]
    var = pd.concat(var_parts)
    var = var[~var.index.duplicated()].reindex(union)
    blocks, obs, prov = [], [], {}
    for sample, adata in parts:
        x = sp.csr_matrix(adata.X)
        cols = union.get_indexer(adata.var_names)
        # remap column indices into the union; the same sparsity, no dense intermediate (data copied:
        # sort_indices reorders it in place and must not touch the sample's own matrix)
        block = sp.csr_matrix((x.data.copy(), cols[x.indices], x.indptr.copy()), shape=(adata.n_obs, len(union)))
        block.sort_indices()
        blocks.append(block)
        obs.append(_prefixed_obs(adata, sample, sheet.loc[sample], free, has_batch))
        row = sheet.loc[sample]
        prov[sample] = {
            "inputs": {c: row.get(c) or "" for c in ("junctions", "cell_sheet", "genes", "barcodes")},
            "n_cells": int(adata.n_obs), "n_junctions": int(adata.n_vars),
            "n_junction_reads": int(x.sum()), "ingest": dict(adata.uns.get("splicevi_ingest", {})),
        }
    X = sp.vstack(blocks, format="csr")
    merged = ad.AnnData(X=X, obs=pd.concat(obs), var=var)
    if not merged.obs_names.is_unique:  # cannot happen with valid ids; guards a reader returning duplicates
        dup = merged.obs_names[merged.obs_names.duplicated()][0]
        raise ValueError(f"merged cell id '{dup}' occurs twice; check the sample's barcodes")
    merged.var["total_reads"] = np.asarray(X.sum(axis=0)).ravel().astype(np.int64)
    merged.var["n_cells"] = np.bincount(X.indices, minlength=X.shape[1]).astype(np.int64)
    for col in ("sample", *free, "batch"):
        merged.obs[col] = pd.Categorical(merged.obs[col].astype(str))
    return merged, {"separator": SEPARATOR, "cell_id": "<sample>_<barcode>", "samples": prov}


def merge_genes(parts: list[tuple[str, ad.AnnData]], obs: pd.DataFrame) -> ad.AnnData:
    """Stack the gene counts of several samples (same gene ids in each) with merged cell ids.

    Raises
    ------
    ValueError
        When two samples have different gene sets, naming both and example genes.
    """
    first_sample, first = parts[0]
    genes = first.var_names
    blocks, names = [], []
    for sample, adata in parts:
        if not adata.var_names.is_unique:
            dup = adata.var_names[adata.var_names.duplicated()][0]
            raise ValueError(f"sample '{sample}': gene id '{dup}' occurs twice in its gene counts")
        if set(adata.var_names) != set(genes):
            only_here = sorted(set(adata.var_names) - set(genes))[:3]
            only_first = sorted(set(genes) - set(adata.var_names))[:3]
            raise ValueError(
                f"samples '{first_sample}' and '{sample}' have different gene sets ({len(genes)} vs "
                f"{adata.n_vars} genes; only in '{sample}': {only_here}, only in '{first_sample}': {only_first}); "
                "fix: count every sample against the same annotation")
        blocks.append(sp.csr_matrix(adata[:, genes].X))
        names += cell_ids(sample, adata.obs_names)
    merged = ad.AnnData(X=sp.vstack(blocks, format="csr"), obs=pd.DataFrame(index=names), var=first.var.copy())
    for col in obs.columns:
        merged.obs[col] = obs[col].reindex(merged.obs_names).to_numpy()
    return merged
