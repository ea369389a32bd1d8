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

from ._tables import count_totals
from .readers_junctions import harmonize_chromosome_names, junction_ids
from .samples import SEPARATOR, annotation_columns, cell_ids

#: Junction annotation columns recomputed after the merge (they are sums over cells).
_SUM_COLUMNS = ("total_reads", "n_cells")


def _prefixed_obs(
    adata: ad.AnnData, sample: str, row: pd.Series, free: list[str], has_batch: bool
) -> pd.DataFrame:
    obs = pd.DataFrame(index=pd.Index(cell_ids(sample, adata.obs_names), name=None))
    obs["sample"] = sample
    obs["barcode"] = adata.obs_names.to_numpy()
    for col in free:
        obs[col] = row[col] if row[col] is not None else ""
    if not has_batch:
        obs["batch"] = sample
    return obs


def harmonize_samples(parts: list[tuple[str, ad.AnnData]]) -> tuple[list[tuple[str, ad.AnnData]], dict]:
    """One spelling per chromosome across samples (``chr1`` in one, ``1`` in another), as ingest does in one.

    Without it the same intron would be two junctions of the cohort. The spelling of more junctions
    (counted per sample) wins; junction ids are rebuilt from the renamed coordinates, and junctions
    that become one within a sample are summed.

    Returns
    -------
    parts, note
        The samples (renamed where needed) and ``{"chrom_renamed": {old: new}, "chrom_renamed_samples":
        {sample: n junctions renamed}}`` (empty when nothing was renamed).
    """
    chroms = pd.concat([p.var["chrom"].astype(str) for _, p in parts if "chrom" in p.var], ignore_index=True)
    if chroms.empty:
        return parts, {}
    _, renamed = harmonize_chromosome_names(chroms)
    if not renamed:
        return parts, {}
    out, per_sample = [], {}
    for sample, adata in parts:
        hit = adata.var["chrom"].astype(str).isin(list(renamed)).to_numpy()
        if not hit.any():
            out.append((sample, adata))
            continue
        per_sample[sample] = int(hit.sum())
        var = adata.var.copy()
        var["chrom"] = var["chrom"].astype(str).replace(renamed)
        ids = pd.Index(junction_ids(var))
        uniq, inverse = np.unique(ids.to_numpy(dtype=str), return_inverse=True)
        x = sp.csr_matrix(adata.X)
        if len(uniq) < len(ids):  # both spellings within one sample: sum the two columns
            combine = sp.csr_matrix(
                (np.ones(len(ids), dtype=x.dtype), (np.arange(len(ids)), inverse)),
                shape=(len(ids), len(uniq)),
            )
            x = (x @ combine).tocsr()
            first = np.zeros(len(uniq), dtype=np.int64)
            first[inverse[::-1]] = np.arange(len(ids))[::-1]
            var = var.iloc[first]
            var.index = pd.Index(uniq)
        else:
            var.index = ids
        part = ad.AnnData(X=x, obs=adata.obs.copy(), var=var, uns=dict(adata.uns))
        out.append((sample, part))
    note = {"chrom_renamed": dict(sorted(renamed.items())), "chrom_renamed_samples": per_sample}
    return out, note


def merge_junctions(parts: list[tuple[str, ad.AnnData]], sheet: pd.DataFrame) -> tuple[ad.AnnData, dict]:
    """Union the junctions of several samples; rows are the samples' cells in sheet order.

    Parameters
    ----------
    parts
        ``(sample id, cells × junctions AnnData)`` from ``splicevi ingest``, one per sample.
    sheet
        The sample sheet (:func:`~splicevi.data.samples.read_cohort_sheet`), for the annotations.

    Returns
    -------
    merged, provenance
        ``provenance`` holds per sample its input paths, cells, junctions and reads, and its ingest notes.
    """
    free = annotation_columns(sheet)
    has_batch = "batch" in free
    parts, chrom_note = harmonize_samples(parts)
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
        block = sp.csr_matrix(
            (x.data.copy(), cols[x.indices], x.indptr.copy()), shape=(adata.n_obs, len(union))
        )
        block.sort_indices()
        blocks.append(block)
        obs.append(_prefixed_obs(adata, sample, sheet.loc[sample], free, has_batch))
        row = sheet.loc[sample]
        prov[sample] = {
            "inputs": {c: row.get(c) or "" for c in ("junctions", "cell_sheet", "genes", "barcodes")},
            "n_cells": int(adata.n_obs),
            "n_junctions": int(adata.n_vars),
            "n_junction_reads": int(count_totals(x, axis=0).sum()),
            "ingest": dict(adata.uns.get("splicevi_ingest", {})),
        }
    X = sp.vstack(blocks, format="csr")
    merged = ad.AnnData(X=X, obs=pd.concat(obs), var=var)
    if not merged.obs_names.is_unique:  # cannot happen with valid ids; guards a reader returning duplicates
        dup = merged.obs_names[merged.obs_names.duplicated()][0]
        raise ValueError(f"merged cell id '{dup}' occurs twice; check the sample's barcodes")
    merged.var["total_reads"] = count_totals(X, axis=0)
    merged.var["n_cells"] = np.bincount(X.indices, minlength=X.shape[1]).astype(np.int64)
    for col in ("sample", *free, "batch"):
        merged.obs[col] = pd.Categorical(merged.obs[col].astype(str))
    return merged, {"separator": SEPARATOR, "cell_id": "<sample>_<barcode>", "samples": prov, **chrom_note}


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
                "fix: count every sample against the same annotation"
            )
        blocks.append(sp.csr_matrix(adata[:, genes].X))
        names += cell_ids(sample, adata.obs_names)
    merged = ad.AnnData(
        X=sp.vstack(blocks, format="csr"), obs=pd.DataFrame(index=names), var=first.var.copy()
    )
    for col in obs.columns:
        merged.obs[col] = obs[col].reindex(merged.obs_names).to_numpy()
    return merged
