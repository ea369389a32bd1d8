"""Per-cell QC metrics and the per-cell table behind the report's plots."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import EVENT_ID_COLUMN
from ..stats.contrasts import CLUSTER_KEY
from .embedding import UMAP_KEY


def _counts_qc(counts, obs_names) -> pd.DataFrame:
    """Total counts and number of non-zero features per cell (:func:`scanpy.pp.calculate_qc_metrics`)."""
    import scanpy as sc

    # a copy: calculate_qc_metrics (scanpy 1.11) changed the row pointers of a CSR matrix it was given
    adata = ad.AnnData(X=sp.csr_matrix(counts, copy=True), obs=pd.DataFrame(index=pd.Index(obs_names)))
    obs, _ = sc.pp.calculate_qc_metrics(adata, percent_top=None, log1p=False, inplace=False)
    return obs[["total_counts", "n_genes_by_counts"]]


def qc_metrics(mdata) -> pd.DataFrame:
    """Per-cell QC metrics from the count layers of a MuData in the project's data contract.

    Returns
    -------
    DataFrame
        Indexed by cell: ``n_junction_reads`` and ``n_atse_observed`` (splicing), and when an ``rna``
        modality exists ``total_counts`` and ``n_genes_detected``.
    """
    from splicevi.data.layers import JUNCTION_COUNTS, event_codes, observed_atses

    qc = pd.DataFrame(index=mdata.obs_names)
    if "splicing" in mdata.mod:
        spl = mdata["splicing"]
        k = sp.csr_matrix(spl.layers[JUNCTION_COUNTS] if JUNCTION_COUNTS in spl.layers else spl.X)
        qc.loc[spl.obs_names, "n_junction_reads"] = _counts_qc(k, spl.obs_names)["total_counts"].to_numpy()
        if EVENT_ID_COLUMN in spl.var:
            codes, _ = event_codes(spl.var[EVENT_ID_COLUMN])
            qc.loc[spl.obs_names, "n_atse_observed"] = np.diff(observed_atses(k, codes).indptr)
    if "rna" in mdata.mod:
        rna = mdata["rna"]
        counts = _counts_qc(rna.X, rna.obs_names)
        qc.loc[rna.obs_names, "total_counts"] = counts["total_counts"].to_numpy()
        qc.loc[rna.obs_names, "n_genes_detected"] = counts["n_genes_by_counts"].to_numpy()
    return qc


def cell_table(mdata, cluster_key: str = CLUSTER_KEY) -> pd.DataFrame:
    """One row per cell: annotations, QC metrics, cluster and UMAP coordinates (for plots).

    Parameters
    ----------
    mdata
        MuData with ``obsm["X_umap"]`` and ``obs[cluster_key]`` (as written by ``splicevi cluster``).
    cluster_key
        Column of the clusters.
    """
    obs = mdata.obs.copy()
    obs = obs.loc[:, [c for c in obs.columns if ":" not in str(c)]]  # global annotations only
    for name, mod in mdata.mod.items():
        for col in mod.obs.columns:
            if col not in obs.columns and (
                isinstance(mod.obs[col].dtype, pd.CategoricalDtype) or mod.obs[col].dtype == object
            ):
                obs[col] = mod.obs[col].reindex(obs.index)
            elif (
                col not in obs.columns
                and col not in ("_scvi_batch", "_scvi_labels")
                and not col.startswith("_")
            ):
                obs[f"{name}:{col}"] = mod.obs[col].reindex(obs.index)
    qc = qc_metrics(mdata)
    for col in qc.columns:
        obs[col] = qc[col]
    if UMAP_KEY in mdata.obsm:
        umap = np.asarray(mdata.obsm[UMAP_KEY])
        obs["umap1"], obs["umap2"] = umap[:, 0], umap[:, 1]
    obs.index.name = "cell_id"
    return obs
