"""Highly variable ATSEs: excess variation of junction usage across cells, given each cell's reads.

At droplet coverage a cell has one to three reads in a few percent of its ATSEs, so per-cell PSI is
mostly sampling noise and the few hundred ATSEs whose usage really differs between cells are
drowned by thousands that do not. This module ranks ATSEs by how much more their junction counts
vary across cells than reads drawn from one pooled PSI would.

The statistic
-------------
For an ATSE with junctions ``j`` and a cell ``c`` with ``n_c`` reads in it, ``k_cj`` of them on
junction ``j``, the number of *pairs of reads of the same cell that fall on the same junction*,
``S_c = Σ_j k_cj (k_cj - 1)``, has expectation ``n_c (n_c - 1) Σ_j E[p_cj²]`` whatever the read
distribution given the cell's PSI ``p_c`` (multinomial). With ``p̄`` the pooled PSI and
``q = Σ_j p̄_j²``, ``Σ_j E[p_cj²] = q + ρ (1 - q)`` where ``ρ`` is the intra-cell correlation of
reads, i.e. the share of the junction-usage variance that lies *between* cells: 0 when every cell
has the same PSI (binomial / multinomial reads), ``1 / (1 + α)`` for Dirichlet-multinomial reads
of concentration ``α``, larger when cell states differ. The moment estimator over the cells
with at least two reads in the ATSE is

    ρ̂ = Σ_c (S_c - P_c q) / ((1 - q) Σ_c P_c),   P_c = n_c (n_c - 1).

Cells with a single read carry no information on variation across cells (a single read is a draw
from the pooled PSI whatever the cell's PSI) and contribute nothing; this is why a Pearson
chi-square of counts against the pooled PSI, which they dominate at droplet coverage, ranks poorly
there. The estimate is a ratio of sums over cells; its standard error is the usual one of a ratio
estimator (from the per-cell residuals ``S_c - ρ̂ P_c (1 - q) - P_c q``), and the ranking statistic
is the excess over the typical ATSE (median ρ̂, which absorbs the overdispersion every ATSE has)
in standard errors:

    z = (ρ̂ - median ρ̂) / se(ρ̂).

Ranking by ``z`` rather than by ``ρ̂`` prefers ATSEs whose excess is supported by many pairs of
reads: a 0.9 from three cells is noise, a 0.2 from three hundred is a cell-state difference. The
selection keeps the ``n_top`` ATSEs of largest ``z`` (or those above ``min_z``); ATSEs with fewer
than ``min_cells`` cells of at least two reads, and ATSEs that vary no more than the typical one
(``z ≤ 0``), are never selected. Measured on simulated data in
``bench/quality.py`` (precision of the top ATSEs against the planted differential ones).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .layers import junction_to_event_matrix

#: ATSEs kept by default (the selection the splicing encoder reads when none was written).
DEFAULT_N_TOP = 400

#: Columns written to the ATSE table and (per junction, via the ATSE) to ``var``.
STAT_COLUMNS = ("hva_rho", "hva_z", "hva_cells_multi", "hva_mean_reads", "hva_rank")


def atse_variation(junction_counts: sp.spmatrix, codes: np.ndarray, min_cells: int = 10) -> pd.DataFrame:
    """Excess variation of every ATSE's junction counts across cells (see the module docstring).

    Parameters
    ----------
    junction_counts
        Cells × junctions read counts ``k``.
    codes
        ATSE code per junction (:func:`splicevi.data.layers.event_codes`).
    min_cells
        ATSEs with fewer cells of at least two reads get ``z = NaN`` (never selected).

    Returns
    -------
    pandas.DataFrame
        One row per ATSE code: ``hva_rho`` (ρ̂), ``hva_z`` (excess over the median ρ̂ in standard
        errors), ``hva_cells_multi`` (cells with ≥ 2 reads), ``hva_cells_observed`` (cells with ≥ 1
        read) and ``hva_mean_reads`` (mean reads per observing cell).
    """
    k = sp.csr_matrix(junction_counts, dtype=np.float64)
    codes = np.asarray(codes)
    if k.shape[1] != codes.shape[0]:
        raise ValueError(f"junction_counts has {k.shape[1]} junction columns but codes has {codes.shape[0]}")
    if k.nnz and (k.data < 0).any():
        raise ValueError("junction_counts has negative values; expected read counts")
    m = junction_to_event_matrix(codes)
    n_events = m.shape[1]
    totals = (k @ m).tocsr()  # cells × ATSEs reads n_c
    totals.eliminate_zeros()
    # Σ_j k(k-1) per (cell, ATSE), on the pattern of ``totals`` (S > 0 only where n ≥ 2): adding a
    # matrix of ones on that pattern and subtracting 1 aligns both data arrays entry by entry.
    pairs_same = sp.csr_matrix((k.multiply(k) - k) @ m)
    pairs_same.eliminate_zeros()
    ones = totals.copy()
    ones.data = np.ones_like(ones.data)
    aligned = (ones + pairs_same).tocsr()
    aligned.sum_duplicates()
    totals.sort_indices()
    if aligned.nnz != totals.nnz:  # pragma: no cover - S > 0 implies n > 0
        raise RuntimeError("internal error: pairs of reads outside the observed (cell, ATSE) pairs")
    # Pooled PSI of every junction: its reads over its ATSE's reads (over all cells).
    junction_reads = np.asarray(k.sum(axis=0)).ravel()
    event_reads = np.bincount(codes, weights=junction_reads, minlength=n_events)
    pooled = np.divide(
        junction_reads, event_reads[codes], out=np.zeros_like(junction_reads), where=event_reads[codes] > 0
    )
    q = np.bincount(codes, weights=pooled**2, minlength=n_events)
    one_minus_q = np.maximum(1.0 - q, 1e-12)

    # Per (cell, ATSE) entries of the cells with ≥ 2 reads: P_c and S_c aligned on totals' pattern.
    n_c = totals.data
    p_c = n_c * (n_c - 1.0)
    s_c = aligned.data - 1.0
    ev = totals.indices
    cells_observed = np.bincount(ev, minlength=n_events)
    multi = p_c > 0
    cells_multi = np.bincount(ev[multi], minlength=n_events)
    sum_p = np.bincount(ev, weights=p_c, minlength=n_events)
    sum_s = np.bincount(ev, weights=s_c, minlength=n_events)
    denom = one_minus_q * sum_p
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(sum_p > 0, (sum_s - q * sum_p) / np.where(denom > 0, denom, 1.0), np.nan)
        # Ratio-estimator standard error from the per-cell residuals (cells with ≥ 2 reads only).
        resid = s_c - p_c * (q[ev] + np.nan_to_num(rho)[ev] * one_minus_q[ev])
        var = np.bincount(ev, weights=np.where(multi, resid**2, 0.0), minlength=n_events)
        se = np.sqrt(var) / np.where(denom > 0, denom, np.nan)
    enough = (cells_multi >= max(int(min_cells), 2)) & np.isfinite(rho)
    reference = float(np.median(rho[enough])) if enough.any() else 0.0
    # se = 0: every cell's reads agree exactly with the fit (e.g. each cell's reads all on one
    # junction, cells differing in which): the excess is exact, z is ±inf (0 at the reference).
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = rho - reference
        z = np.where(se > 0, excess / np.where(se > 0, se, 1.0), np.sign(excess) * np.inf)
    z = np.where(enough, np.nan_to_num(z, nan=0.0, posinf=np.inf, neginf=-np.inf), np.nan)
    reads = np.bincount(ev, weights=n_c, minlength=n_events)
    mean_reads = np.divide(reads, cells_observed, out=np.zeros(n_events), where=cells_observed > 0)
    return pd.DataFrame(
        {
            "hva_rho": rho,
            "hva_z": z,
            "hva_cells_multi": cells_multi,
            "hva_cells_observed": cells_observed,
            "hva_mean_reads": mean_reads,
        }
    )


def select_variable_atses(
    table: pd.DataFrame, n_top: int | None = 400, min_z: float | None = None
) -> np.ndarray:
    """Boolean mask of the selected ATSEs of an :func:`atse_variation` table.

    Parameters
    ----------
    table
        Output of :func:`atse_variation`.
    n_top
        Keep the ``n_top`` ATSEs of largest ``z`` (``None``: no cap).
    min_z
        Keep only ATSEs with ``z ≥ min_z`` (``None``: no threshold). With both, both apply.
    """
    z = table["hva_z"].to_numpy(dtype=np.float64)
    # Only ATSEs that vary more than the typical ATSE (z > 0) are candidates, whatever n_top.
    ok = ~np.isnan(z) & (z > 0)
    if min_z is not None:
        ok &= z >= min_z
    if n_top is not None:
        if n_top < 1:
            raise ValueError(f"n_top must be at least 1, got {n_top}")
        order = np.argsort(-np.where(ok, z, -np.inf), kind="stable")
        order = order[ok[order]]
        keep = np.zeros(z.shape[0], dtype=bool)
        keep[order[: min(n_top, int(ok.sum()))]] = True
        ok &= keep
    return ok


def variation_ranks(table: pd.DataFrame) -> np.ndarray:
    """Rank of every ATSE by ``z`` (1 = most variable; ATSEs without a statistic get 0)."""
    z = table["hva_z"].to_numpy(dtype=np.float64)
    has = ~np.isnan(z)
    order = np.flatnonzero(has)[np.argsort(-z[has], kind="stable")]
    ranks = np.zeros(z.shape[0], dtype=np.int64)
    ranks[order] = np.arange(1, order.size + 1)
    return ranks
