"""Differential expression of two groups of cells on held-out gene counts: a cell-level negative-binomial score test.

Clusters found on the gene counts are tested on counts the clustering never saw (the held-out part
of :func:`splicevi.data.thinning.split_genes`). Given each cell's mean, the held-out counts of a gene
that does not differ are independent of the clusters, so any calibrated two-group test of them
keeps its level; this one is chosen for keeping it on small groups of sparse, overdispersed counts
(random groups in ``bench/de_clusters.py``, method ``d0``):

* each group's expression is the ratio ``r_k = Σ x / Σ s`` over its cells (``s`` the cell's
  held-out library size over the mean): the Poisson maximum-likelihood rate with a depth offset, so
  clusters that differ in depth (a latent is never fully depth-free) are compared at equal depth;
* the test is the score test of ``r_1 = r_2``: each group's variance is the negative-binomial
  variance ``Σ (μ + μ² / θ) / (Σ s)²`` at the pooled rate ``μ = r_0 s`` (the null fit), with the
  gene's θ by moments on the compared cells' held-out counts around their depth-scaled pooled mean
  (:func:`splicevi.data.thinning.gene_inverse_dispersion`). At the pooled rate a group with no
  counts still has a variance (a Wald test at each group's own rate would call a gene absent from a
  small cluster by chance); θ estimated over both groups counts any between-cell difference as
  noise, so the test errs conservative where the cells are heterogeneous. A sandwich (empirical,
  cells-as-units) variance was tried and rejected: on random groups of 20 against 780 NB cells it
  made 4 false calls per contrast (BH 0.05), the negative-binomial variance none;
* the reference is Student's t with Welch–Satterthwaite degrees of freedom.

Model-free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ..data.thinning import gene_inverse_dispersion
from .differential import bh_qvalues

#: Short name of the test (the DE table's ``test`` column).
TEST_NAME = "held-out gene counts (count splitting), cell-level negative-binomial score test"
#: Cells with a held-out count a gene needs, over both groups, to be tested (p-value 1 below): a
#: gene seen in a couple of cells has a variance estimate the t reference cannot carry.
MIN_EXPRESSING_CELLS = 5


def _group_sums(x: sp.csr_matrix, s: np.ndarray, cells: np.ndarray) -> dict:
    """Per gene Σx and cells with a count; per group n, Σs, Σs² (cells with s > 0)."""
    cells = cells[s[cells] > 0]
    sub = x[cells]
    ss = s[cells]
    return {
        "n": cells.size,
        "S": float(ss.sum()),
        "Q": float(np.sum(ss**2)),
        "X": np.asarray(sub.sum(axis=0)).ravel(),
        "expressing": np.diff(sub.tocsc().indptr),
    }


def heldout_de_test(
    heldout: sp.spmatrix,
    cells1: np.ndarray,
    cells2: np.ndarray,
    genes: pd.Index,
    fdr_target: float = 0.05,
    delta: float = 0.0,
) -> pd.DataFrame:
    """Cell-level negative-binomial score test of group 1 against group 2 on (held-out) gene counts, per gene.

    Parameters
    ----------
    heldout
        Cells × genes counts to test on (the held-out part).
    cells1, cells2
        Integer indices of the two groups' cells.
    genes
        Gene ids (columns of ``heldout``).
    fdr_target
        Target FDR of ``is_de_fdr`` (Benjamini–Hochberg over the genes).
    delta
        Calls also need ``|lfc_mean| ≥ delta`` (log2), as the samples design's.

    Returns
    -------
    pd.DataFrame
        Per gene (index ``gene_id``): ``lfc_mean`` (log2 ratio of the groups' depth-normalised
        means, half a count of pseudocount), ``lfc_se``, ``stat`` (t), ``df``, ``pvalue``,
        ``qvalue``, ``proba_de`` (``1 − qvalue``, for the ranking and plotting tools),
        ``log10_pvalue``, ``is_de_fdr``, ``norm1`` / ``norm2`` (mean held-out counts per 10,000),
        ``n_expr_group1`` / ``2`` (cells with a held-out count), ``n_cells_group1`` / ``2``.
        Genes below :data:`MIN_EXPRESSING_CELLS` expressing cells have p-value 1.
    """
    x = sp.csr_matrix(heldout, dtype=np.float64)
    cells1, cells2 = np.asarray(cells1, dtype=np.int64), np.asarray(cells2, dtype=np.int64)
    depth = np.asarray(x.sum(axis=1)).ravel()
    both = np.r_[cells1, cells2]
    mean_depth = float(depth[both][depth[both] > 0].mean()) if np.any(depth[both] > 0) else 1.0
    s = depth / mean_depth
    g1, g2 = _group_sums(x, s, cells1), _group_sums(x, s, cells2)
    n_genes = x.shape[1]
    if min(g1["n"], g2["n"]) < 2:
        raise ValueError(
            f"each group needs at least 2 cells with held-out gene counts (group1 {g1['n']}, group2 {g2['n']})"
        )
    r1, r2 = g1["X"] / g1["S"], g2["X"] / g2["S"]
    r0 = (g1["X"] + g2["X"]) / (g1["S"] + g2["S"])

    # Variance of each group's rate under the null: negative binomial at the pooled rate, θ by
    # moments on the compared cells' counts (a sandwich variance of a small group's few skewed
    # counts is too often small: see the module doc).
    theta = gene_inverse_dispersion(x[both], min_cells=MIN_EXPRESSING_CELLS)

    def variance(g):
        return (r0 * g["S"] + r0**2 * g["Q"] / theta) / g["S"] ** 2

    v1, v2 = variance(g1), variance(g2)
    v = v1 + v2
    testable = (v > 0) & (g1["expressing"] + g2["expressing"] >= MIN_EXPRESSING_CELLS)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(testable, (r1 - r2) / np.sqrt(v), 0.0)
        df = np.where(testable, v**2 / (v1**2 / (g1["n"] - 1.0) + v2**2 / (g2["n"] - 1.0)), 1.0)
    df = np.where(np.isfinite(df) & (df > 0), df, 1.0)
    log_p = np.where(testable, np.log(2.0) + stats.t.logsf(np.abs(t), df), 0.0)
    log_p = np.minimum(log_p, 0.0)
    q = bh_qvalues(log_p)
    # Half a count over each group's cells as pseudocount: finite fold changes for absent genes.
    eps1, eps2 = 0.5 / g1["S"], 0.5 / g2["S"]
    lfc = np.log2((r1 + eps1) / (r2 + eps2))
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(v1 / (r1 + eps1) ** 2 + v2 / (r2 + eps2) ** 2) / np.log(2.0)
    per_10k = 1e4 / mean_depth
    return pd.DataFrame(
        {
            "lfc_mean": lfc,
            "lfc_se": np.where(testable, se, np.nan),
            "stat": t,
            "df": df,
            "pvalue": np.exp(log_p),
            "qvalue": q,
            "proba_de": 1.0 - q,
            "log10_pvalue": log_p / np.log(10.0),
            "is_de_fdr": (q <= fdr_target) & (np.abs(lfc) >= delta) & testable,
            "norm1": r1 * per_10k,
            "norm2": r2 * per_10k,
            "n_expr_group1": g1["expressing"].astype(np.int64),
            "n_expr_group2": g2["expressing"].astype(np.int64),
            "n_cells_group1": np.full(n_genes, g1["n"], dtype=np.int64),
            "n_cells_group2": np.full(n_genes, g2["n"], dtype=np.int64),
        },
        index=pd.Index(genes, name="gene_id"),
    )
