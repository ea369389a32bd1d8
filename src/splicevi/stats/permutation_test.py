"""Permutation test of Welch's t on per-cell residuals, for comparisons with a small group (labels design).

Why: on deep full-length cells (Smart-seq2 plates) a cell's PSI is often nearly 0 or 1, so the
reads-only quasi-binomial test (:mod:`splicevi.stats.read_test`) sees a few effective reads per
cell and little power, while Welch's t-test on per-cell PSI is powerful but anti-conservative
where a group has a handful of observing cells that agree (its estimated variance is near zero).
On the 37 real cells of ``../shared/data/scasl_tnbc_smartseq2`` (20 random splits within one
patient, 17 vs 5 cells) Welch made 97 false calls in 13 of 20 splits; the reads-only test 3
calls in 2 splits, but only 3 calls between the two patients where Welch makes 40.

Permuting the group labels gives a statistic an exact null distribution when the cells are
exchangeable. Per-cell PSI is not exchangeable between groups that differ in expression: a group
that expresses the gene less has fewer reads per cell, so more cells read exactly 0 or 1, and a
permutation test of Welch's t on raw PSI made 30 false calls where the reads-only rule made 5
(``bench/ds_call_rules.py``, two types that differ in expression, 15 % coverage). So each cell
enters as its standardised residual ``(k − n p0) / sqrt(n p0 (1 − p0) (1 + (n − 1) ρ))`` at the
comparison's pooled PSI ``p0`` with the cells' overdispersion ``ρ`` (both computed over the
comparison's cells as one group, so they do not depend on the labels): under "same PSI" the
residuals have mean 0 and variance 1 whatever a cell's reads, and Welch's t on them keeps its
power where deep cells read nearly 0 or 1 (alone, 25 calls between the patients; one call in 80
random splits within a patient). Where a group's cells are shallow and the groups' reads per cell
differ by more than :data:`MAX_DEPTH_RATIO`, not even the residuals are exchangeable (2 reads per
cell against 50: 9.5 % of null p-values below 0.05), and the junction is not permuted.

Used only where a group is small (at most :data:`MAX_SMALL_GROUP` cells): there the asymptotic
tests are weakest; with hundreds of cells per group the permutations added as many false calls
as true ones on the quality grid.

Cost: the statistic of ``B`` permutations is six dense products of a ``B × cells`` label matrix
with ``cells × junctions`` matrices; junctions drop out once they have :data:`STOP_EXCEEDANCES`
permuted statistics at least as large as the observed one (their p-value is then known well
enough; Besag & Clifford's sequential stopping), so the full ``B`` is spent only on the strong
junctions. A comparison whose first round alone exceeds :data:`WORK_BUDGET` is not permuted.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .read_test import ReadSums, regularised_psi

#: Smallest attainable p-value relative to Benjamini–Hochberg's first threshold ``fdr / m``: the
#: number of permutations is ``RESOLUTION · m / fdr`` (so a strong junction can be called even
#: when it is the only one).
RESOLUTION = 4.0
#: Bounds on the number of permutations.
MIN_PERMUTATIONS, MAX_PERMUTATIONS = 1_000, 200_000
#: A junction stops once this many permuted statistics reach its observed one.
STOP_EXCEEDANCES = 20
#: Multiply-adds allowed per contrast (about 5–10 s on one CPU thread).
WORK_BUDGET = 1.5e10
#: Fewest observing cells per group for a junction to be tested (as Welch's test and the reads test).
MIN_OBS = 2
#: A comparison is permuted only when its smaller group has at most this many cells.
MAX_SMALL_GROUP = 50
#: A junction is permuted only when its groups' mean reads per observing cell differ by at most this
#: factor, or both groups' cells are deep (:data:`DEEP_READS`): cells with a few reads read exactly
#: 0 or 1 more often, which no per-cell standardisation makes exchangeable with deep cells (see the
#: module docstring); with many reads per cell a PSI of 0 or 1 is the cell's, not the sampling's.
MAX_DEPTH_RATIO = 3.0
DEEP_READS = 20.0
_FIRST_ROUND = 1_000
#: Permuted label rows per block (memory: block × junctions floats per product).
_BLOCK = 512


def n_permutations(n_tests: int, fdr_target: float) -> int:
    """Permutations for ``n_tests`` junctions at ``fdr_target`` (:data:`RESOLUTION`, bounded)."""
    want = int(np.ceil(RESOLUTION * max(n_tests, 1) / fdr_target))
    return int(np.clip(want, MIN_PERMUTATIONS, MAX_PERMUTATIONS))


def affordable(n_cells: int, n_junctions: int) -> bool:
    """Whether ``n_cells`` cells and ``n_junctions`` testable junctions fit the :data:`WORK_BUDGET`."""
    return 6.0 * n_cells * n_junctions * _FIRST_ROUND <= WORK_BUDGET


def permuted(n_group1: int, n_group2: int, n_junctions: int) -> bool:
    """Whether a comparison is permuted: a group of at most :data:`MAX_SMALL_GROUP` cells, affordable."""
    return min(n_group1, n_group2) <= MAX_SMALL_GROUP and affordable(n_group1 + n_group2, n_junctions)


def standardised_residuals(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per-cell residuals of dense ``k``, ``n`` (cells × junctions) at the pooled PSI, variance 1.

    ``(k − n p0) / sqrt(n p0 (1 − p0) (1 + (n − 1) ρ))`` with ``p0`` and ``ρ`` (the cells'
    overdispersion, :meth:`ReadSums.overdispersion`) over all the cells as one group; 0 where the
    cell does not observe the junction.
    """
    rows, cols = np.nonzero(n > 0)
    sums = ReadSums(1, k.shape[1])
    sums.add(np.zeros(k.shape[0], dtype=np.int64), rows, cols, k[rows, cols], n[rows, cols])
    rho, _ = sums.overdispersion()
    p0 = regularised_psi(k.sum(0), n.sum(0))
    var = n * (p0 * (1.0 - p0)) * (1.0 + np.maximum(n - 1.0, 0.0) * rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (k - n * p0) / np.sqrt(np.where(n > 0, var, 1.0)), 0.0)


def _abs_welch(labels: np.ndarray, y: np.ndarray, y2: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """|Welch t| of ``y`` per (label row, junction); 0 where a group has fewer than :data:`MIN_OBS` cells.

    A junction whose groups both have no spread but different means gets an infinite statistic
    (the strongest evidence the data can give); equal means give 0.
    """
    rest = 1.0 - labels
    n1, n2 = labels @ obs, rest @ obs
    s1, s2 = labels @ y, rest @ y
    q1, q2 = labels @ y2, rest @ y2
    with np.errstate(invalid="ignore", divide="ignore"):
        m1, m2 = s1 / n1, s2 / n2
        var = (
            np.maximum(q1 - n1 * m1**2, 0.0) / (n1 - 1.0) / n1
            + np.maximum(q2 - n2 * m2**2, 0.0) / (n2 - 1.0) / n2
        )
        diff = np.abs(m1 - m2)
        t = np.where(
            var > 1e-24, diff / np.sqrt(np.where(var > 1e-24, var, 1.0)), np.where(diff > 1e-9, np.inf, 0.0)
        )
    return np.where((n1 >= MIN_OBS) & (n2 >= MIN_OBS), t, 0.0)


def _permuted_labels(in1: np.ndarray, blocks: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` label rows, each a permutation of ``in1`` within every block."""
    out = np.empty((size, in1.size))
    for b in np.unique(blocks):
        cols = np.nonzero(blocks == b)[0]
        out[:, cols] = rng.permuted(np.broadcast_to(in1[cols].astype(np.float64), (size, cols.size)), axis=1)
    return out


def permutation_log_pvalues(
    junction_counts,
    atse_counts,
    in_group1: np.ndarray,
    fdr_target: float,
    blocks: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray | None:
    """Log p-values of Welch's t on the cells' standardised residuals under permutation of the labels.

    Parameters
    ----------
    junction_counts, atse_counts
        Cells × junctions ``k`` and ``n`` of the contrast's cells (``n`` > 0: the cell observes the
        junction's ATSE).
    in_group1
        Per cell, whether it is in group 1 (the others are group 2).
    fdr_target
        The calls' target; sets the number of permutations (:func:`n_permutations`).
    blocks
        Optional per-cell block (e.g. batch): labels are permuted within blocks. Ignored unless
        every block has cells of both groups (otherwise no permutation could move a label).
    seed
        Seed of the permutations (the p-values are reproducible).

    Returns
    -------
    np.ndarray or None
        Log p-value per junction (0 where not tested: fewer than :data:`MIN_OBS` observing cells in
        a group, or shallow cells whose reads per observing cell differ between the groups by more
        than :data:`MAX_DEPTH_RATIO`); ``None`` when the comparison is not permuted (:func:`permuted`).
    """
    k = sp.csr_matrix(junction_counts, dtype=np.float64)
    n = sp.csr_matrix(atse_counts, dtype=np.float64)
    in1 = np.asarray(in_group1, dtype=bool)
    obs_sp = (n > 0).astype(np.float64)
    n_obs1 = np.asarray(obs_sp[in1].sum(0)).ravel()
    n_obs2 = np.asarray(obs_sp[~in1].sum(0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        depth1 = np.asarray(n[in1].sum(0)).ravel() / n_obs1
        depth2 = np.asarray(n[~in1].sum(0)).ravel() / n_obs2
        similar_depth = (np.maximum(depth1, depth2) <= MAX_DEPTH_RATIO * np.minimum(depth1, depth2)) | (
            np.minimum(depth1, depth2) >= DEEP_READS
        )
    testable = np.nonzero((n_obs1 >= MIN_OBS) & (n_obs2 >= MIN_OBS) & similar_depth)[0]
    log_p = np.zeros(k.shape[1])
    if testable.size == 0:
        return log_p
    if not permuted(int(in1.sum()), int((~in1).sum()), testable.size):
        return None
    obs = obs_sp[:, testable].toarray()
    y = standardised_residuals(k[:, testable].toarray(), n[:, testable].toarray())
    y2 = y * y
    if blocks is None or any(
        np.unique(in1[np.asarray(blocks) == b]).size < 2 for b in np.unique(np.asarray(blocks))
    ):
        blocks = np.zeros(in1.size, dtype=np.int64)
    observed = _abs_welch(in1[None].astype(np.float64), y, y2, obs)[0]
    # Float ties (the same split scored twice) must count as "at least as large".
    threshold = observed * (1.0 - 1e-10)
    total = n_permutations(testable.size, fdr_target)
    rng = np.random.default_rng(seed)
    exceed = np.zeros(testable.size)
    done = np.zeros(testable.size)
    active = np.nonzero(observed > 0)[0]
    work, round_size = 0.0, _FIRST_ROUND
    while active.size and done[active[0]] < total:
        size = int(min(round_size, total - done[active[0]]))
        cost = 6.0 * in1.size * active.size * size
        if work and work + cost > WORK_BUDGET:
            break
        ya, y2a, oa = y[:, active], y2[:, active], obs[:, active]
        for start in range(0, size, _BLOCK):
            labels = _permuted_labels(in1, blocks, min(_BLOCK, size - start), rng)
            exceed[active] += (_abs_welch(labels, ya, y2a, oa) >= threshold[active]).sum(0)
        done[active] += size
        work += cost
        active = active[exceed[active] < STOP_EXCEEDANCES]
        round_size *= 2
    p = np.where(observed > 0, (exceed + 1.0) / (done + 1.0), 1.0)
    log_p[testable] = np.log(np.minimum(p, 1.0))
    return log_p
