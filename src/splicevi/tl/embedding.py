"""Neighbour graph, UMAP and Leiden clusters of a latent space (``splicevi embed`` and ``cluster``).

Everything is computed on the latent space (cells × a few dimensions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

#: obsm keys of the latent representations and the UMAP written by the workflow.
LATENT_KEYS = {
    "joint": "X_splicevi",
    "expression": "X_splicevi_expression",
    "splicing": "X_splicevi_splicing",
}
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
    """Leiden clusters of a (symmetric, weighted) neighbour graph, by :func:`scanpy.tl.leiden`.

    The leidenalg flavour (RB configuration objective, weighted, iterated until stable), seeded.
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
    import scanpy as sc

    connectivities = sp.csr_matrix(connectivities)
    graph = ad.AnnData(obs=pd.DataFrame(index=pd.RangeIndex(connectivities.shape[0]).astype(str)))
    sc.tl.leiden(
        graph,
        resolution=float(resolution),
        random_state=int(seed),
        adjacency=connectivities,
        flavor="leidenalg",
        n_iterations=-1,
    )
    return pd.Categorical(graph.obs["leiden"].astype(str))
