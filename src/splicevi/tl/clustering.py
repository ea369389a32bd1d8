"""Neighbour graph, UMAP and Leiden clustering on a latent space; per-cell QC; group contrasts.

These helpers back the ``splicevi embed``, ``cluster``, ``ds`` and ``de`` subcommands and work the
same from a notebook. Everything is computed on the latent space (cells × a few dimensions) or from
sparse count layers; nothing is densified whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

#: obsm keys of the latent representations and the UMAP written by the workflow.
LATENT_KEYS = {"joint": "X_splicevi", "expression": "X_splicevi_expression", "splicing": "X_splicevi_splicing"}
UMAP_KEY = "X_umap"
#: obs column of the Leiden clusters.
CLUSTER_KEY = "leiden"
#: Group name meaning "all cells not in group1".
REST = "rest"


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


@dataclass(frozen=True)
class Contrast:
    """A comparison of two groups of cells: ``group1`` against ``group2`` (``None`` = the rest)."""

    name: str
    groupby: str
    group1: str
    group2: str | None = None


def group_labels(mdata, groupby: str) -> pd.Series:
    """The cell annotation ``groupby`` as strings, looked up in ``mdata.obs`` then in each modality.

    Also stores it (as a string categorical) in ``mdata.obs[groupby]`` so that the model's
    differential methods find it there.
    """
    if groupby in mdata.obs.columns:
        values = mdata.obs[groupby]
    else:
        found = [m.obs[groupby].reindex(mdata.obs_names) for m in mdata.mod.values() if groupby in m.obs.columns]
        if not found:
            raise ValueError(
                f"cell annotation '{groupby}' not found (available: {', '.join(map(str, mdata.obs.columns)) or 'none'})"
            )
        values = found[0]
    labels = values.astype(str).where(values.notna(), None)
    mdata.obs[groupby] = pd.Categorical(labels)
    return labels


def resolve_contrasts(
    mdata,
    contrasts: Iterable[Mapping] | None = None,
    default_groupby: str = CLUSTER_KEY,
    min_cells: int = 3,
) -> list[Contrast]:
    """Contrasts to test: the configured ones, or each group of ``default_groupby`` against the rest.

    Parameters
    ----------
    mdata
        The MuData (its annotations are checked; the grouping columns are stored in ``mdata.obs``).
    contrasts
        Mappings with ``name``, ``groupby``, ``group1`` and optional ``group2`` (``None``/``"rest"``
        = all other cells). Empty or ``None``: one contrast per group of ``default_groupby``.
    default_groupby
        Annotation used when no contrasts are given.
    min_cells
        Groups with fewer cells are skipped (in the default contrasts) or rejected (configured ones).

    Returns
    -------
    list of Contrast
    """
    contrasts = list(contrasts or [])
    if not contrasts:
        labels = group_labels(mdata, default_groupby)
        counts = labels.value_counts()
        groups = [g for g in _natural_order(counts.index) if counts[g] >= min_cells and counts[g] < len(labels)]
        if not groups:
            raise ValueError(
                f"no group of '{default_groupby}' has at least {min_cells} cells and fewer than all cells; "
                "nothing to compare (try a higher cluster resolution, or configure contrasts)"
            )
        return [Contrast(f"{default_groupby}{g}_vs_rest", default_groupby, g, None) for g in groups]
    out = []
    for i, c in enumerate(contrasts):
        missing = {"name", "groupby", "group1"} - set(c)
        if missing:
            raise ValueError(f"contrast {i} lacks {', '.join(sorted(missing))}")
        labels = group_labels(mdata, c["groupby"])
        group2 = c.get("group2")
        group2 = None if group2 in (None, REST) else str(group2)
        for g in [str(c["group1"])] + ([group2] if group2 else []):
            n = int((labels == g).sum())
            if n < min_cells:
                present = ", ".join(_natural_order(labels.dropna().unique())[:20])
                raise ValueError(
                    f"contrast '{c['name']}': group '{g}' of '{c['groupby']}' has {n} cells (need {min_cells}); "
                    f"groups present: {present}"
                )
        out.append(Contrast(str(c["name"]), str(c["groupby"]), str(c["group1"]), group2))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast names must be unique, got {names}")
    return out


def _natural_order(values) -> list[str]:
    values = [str(v) for v in values]
    return sorted(values, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))


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
