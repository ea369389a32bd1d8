"""Neighbour graph, UMAP and Leiden clustering on a latent space; per-cell QC; group contrasts.

These helpers back the ``splicevi embed``, ``cluster``, ``ds`` and ``de`` subcommands and work the
same from a notebook. Everything is computed on the latent space (cells × a few dimensions) or from
sparse count layers; nothing is densified whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..stats.contrasts import CLUSTER_KEY, REST, Contrast, group_labels, resolve_contrasts  # noqa: F401 (re-exported)

#: obsm keys of the latent representations and the UMAP written by the workflow.
LATENT_KEYS = {"joint": "X_splicevi", "expression": "X_splicevi_expression", "splicing": "X_splicevi_splicing"}
UMAP_KEY = "X_umap"


def neighbors_umap(
    latent: np.ndarray,
    obs_names: Sequence[str],
    n_neighbors: int = 15,
    min_dist: float = 0.3,
    seed: int = 0,
    extra_latents: Mapping[str, np.ndarray] | None = None,
) -> ad.AnnData:
    """kNN graph and UMAP of a latent space.

    Parameters
    ----------
    latent
        Cells × latent dimensions (the joint latent).
    obs_names
        Cell names, in the order of ``latent``.
    n_neighbors
        Neighbours of the kNN graph (capped at the number of cells − 1).
    min_dist
        UMAP ``min_dist``.
    seed
        Random seed of the UMAP layout.
    extra_latents
        Further latents (e.g. per modality) stored in ``obsm`` under the given keys.

    Returns
    -------
    AnnData
        No features; ``obsm[LATENT_KEYS["joint"]]``, ``obsm["X_umap"]``, the graph in ``obsp``
        (``connectivities``, ``distances``) and its parameters in ``uns["neighbors"]``.
    """
    import scanpy as sc

    latent = np.asarray(latent, dtype=np.float32)
    if latent.ndim != 2 or latent.shape[0] != len(obs_names):
        raise ValueError(f"latent has shape {latent.shape}, expected ({len(obs_names)}, n_latent)")
    if not np.isfinite(latent).all():
        raise ValueError("the latent representation contains NaN or infinite values (did training diverge?)")
    n_cells = latent.shape[0]
    if n_cells < 3:
        raise ValueError(f"need at least 3 cells for a neighbour graph, got {n_cells}")
    emb = ad.AnnData(obs=pd.DataFrame(index=pd.Index(np.asarray(obs_names, dtype=str), name="cell_id")))
    emb.obsm[LATENT_KEYS["joint"]] = latent
    for key, value in (extra_latents or {}).items():
        emb.obsm[key] = np.asarray(value, dtype=np.float32)
    k = int(min(n_neighbors, n_cells - 1))
    sc.pp.neighbors(emb, n_neighbors=k, use_rep=LATENT_KEYS["joint"], random_state=seed)
    sc.tl.umap(emb, min_dist=min_dist, random_state=seed)
    return emb


def leiden(connectivities: sp.spmatrix, resolution: float = 1.0, seed: int = 0) -> pd.Categorical:
    """Leiden clusters of a (symmetric, weighted) neighbour graph.

    Clusters are named ``"0"``, ``"1"``, … from the largest to the smallest.

    Parameters
    ----------
    connectivities
        Cells × cells weighted adjacency (e.g. ``obsp["connectivities"]`` of :func:`neighbors_umap`).
    resolution
        Resolution of the modularity (RB configuration) objective; higher gives more clusters.
    seed
        Random seed.

    Returns
    -------
    pandas.Categorical
        One cluster label per cell.
    """
    import igraph as ig
    import leidenalg

    adj = sp.triu(sp.csr_matrix(connectivities), k=1).tocoo()
    graph = ig.Graph(n=adj.shape[0], edges=list(zip(adj.row.tolist(), adj.col.tolist(), strict=True)), directed=False)
    graph.es["weight"] = adj.data.astype(float).tolist()
    part = leidenalg.find_partition(
        graph,
        leidenalg.RBConfigurationVertexPartition,
        weights="weight",
        resolution_parameter=float(resolution),
        seed=int(seed),
        n_iterations=-1,
    )
    raw = np.asarray(part.membership)
    sizes = np.bincount(raw)
    order = np.argsort(-sizes, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels = rank[raw].astype(str)
    return pd.Categorical(labels, categories=[str(i) for i in range(order.size)])


def qc_metrics(mdata) -> pd.DataFrame:
    """Per-cell QC metrics from the count layers of a MuData in the project's data contract.

    Returns
    -------
    DataFrame
        Indexed by cell: ``n_junction_reads`` and ``n_atse_observed`` (splicing), and when an ``rna``
        modality exists ``total_counts`` and ``n_genes_detected``.
    """
    from splicevi.data.layers import JUNCTION_COUNTS, event_codes, junction_to_event_matrix

    qc = pd.DataFrame(index=mdata.obs_names)
    if "splicing" in mdata.mod:
        spl = mdata["splicing"]
        k = spl.layers[JUNCTION_COUNTS] if JUNCTION_COUNTS in spl.layers else spl.X
        k = sp.csr_matrix(k)
        qc.loc[spl.obs_names, "n_junction_reads"] = np.asarray(k.sum(axis=1)).ravel()
        if "event_id" in spl.var:
            codes, _ = event_codes(spl.var["event_id"])
            per_event = (k @ junction_to_event_matrix(codes)).tocsr()
            per_event.eliminate_zeros()
            qc.loc[spl.obs_names, "n_atse_observed"] = np.diff(per_event.indptr)
    if "rna" in mdata.mod:
        rna = mdata["rna"]
        x = sp.csr_matrix(rna.X)
        qc.loc[rna.obs_names, "total_counts"] = np.asarray(x.sum(axis=1)).ravel()
        qc.loc[rna.obs_names, "n_genes_detected"] = np.diff(x.indptr)
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
            if col not in obs.columns and (isinstance(mod.obs[col].dtype, pd.CategoricalDtype) or mod.obs[col].dtype == object):
                obs[col] = mod.obs[col].reindex(obs.index)
            elif col not in obs.columns and col not in ("_scvi_batch", "_scvi_labels") and not col.startswith("_"):
                obs[f"{name}:{col}"] = mod.obs[col].reindex(obs.index)
    qc = qc_metrics(mdata)
    for col in qc.columns:
        obs[col] = qc[col]
    if UMAP_KEY in mdata.obsm:
        umap = np.asarray(mdata.obsm[UMAP_KEY])
        obs["umap1"], obs["umap2"] = umap[:, 0], umap[:, 1]
    obs.index.name = "cell_id"
    return obs


def rank_table(table: pd.DataFrame, score: str, effect: str | None = None) -> pd.DataFrame:
    """Sort a differential table by decreasing ``score`` (then |``effect``|) within each contrast.

    Adds a 1-based ``rank`` column per contrast (when a ``contrast`` column exists).
    """
    table = table.copy()
    keys, ascending = [score], [False]
    if effect is not None and effect in table.columns:
        table["_abs_effect"] = table[effect].abs()
        keys.append("_abs_effect")
        ascending.append(False)
    if "contrast" in table.columns:
        order = {c: i for i, c in enumerate(pd.unique(table["contrast"]))}
        table["_contrast_order"] = table["contrast"].map(order)
        keys.insert(0, "_contrast_order")
        ascending.insert(0, True)
    table = table.sort_values(keys, ascending=ascending, kind="stable")
    if "contrast" in table.columns:
        table["rank"] = table.groupby("contrast", sort=False).cumcount() + 1
    else:
        table["rank"] = np.arange(1, len(table) + 1)
    return table.drop(columns=[c for c in ("_abs_effect", "_contrast_order") if c in table.columns])


def events_from_junctions(table: pd.DataFrame) -> pd.DataFrame:
    """Per-ATSE summary of a per-junction differential splicing table.

    Used when the model offers no event-level test: each event gets the evidence of its strongest
    junction (``proba_ds``, ``bayes_factor``), the largest |ΔPSI| (``effect_size`` with its sign)
    and whether any junction is called (``is_ds_fdr``).
    """
    required = {"event_id", "proba_ds", "effect_size"}
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"differential splicing table lacks columns {sorted(missing)}")
    keys = ["contrast", "event_id"] if "contrast" in table.columns else ["event_id"]
    t = table.assign(_abs=table["effect_size"].abs())
    best = t.sort_values("_abs", ascending=False, kind="stable").groupby(keys, sort=False).head(1)
    best = best.set_index(keys)
    grouped = t.groupby(keys, sort=False)
    agg = pd.DataFrame(
        {
            "proba_ds": grouped["proba_ds"].max(),
            "effect_size": best["effect_size"],
            "top_junction": best["junction_id"] if "junction_id" in best else best.index.get_level_values(-1),
            "n_junctions": grouped.size(),
        }
    )
    if "bayes_factor" in t.columns:
        agg["bayes_factor"] = grouped["bayes_factor"].max()
    if "is_ds_fdr" in t.columns:
        agg["is_ds_fdr"] = grouped["is_ds_fdr"].any()
    if "gene_name" in t.columns:
        agg["gene_name"] = grouped["gene_name"].first()
    for col in ("group1", "group2", "groupby"):
        if col in t.columns:
            agg[col] = grouped[col].first()
    return agg.reset_index()
