"""The permutation test of Welch's t on the cells' residuals (``stats.permutation_test``; issue 18).

Deep full-length cells whose PSI is nearly 0 or 1 cell by cell: Welch's asymptotic p-values are
too small where a group has a few observing cells that agree, and the reads-only quasi-binomial
test sees a few effective reads per cell. Under permutation Welch's statistic keeps its power and
its level, as long as the cells are exchangeable (standardised residuals; similar reads per cell).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from splicevi.stats import permutation_test as pt
from splicevi.stats import read_test as rt
from splicevi.stats.differential import bh_qvalues, call_rows, welch_per_cell


def _binary_cells(n_cells, p_cell, seed, observed=0.6, depth=50):
    """Cells × junctions ``k``, ``n``: each cell's PSI is 0.02 or 0.98 (1 with prob. ``p_cell``)."""
    rng = np.random.default_rng(seed)
    n = rng.poisson(depth, (n_cells, p_cell.shape[1])) * (rng.random((n_cells, p_cell.shape[1])) < observed)
    psi = np.where(rng.random(n.shape) < p_cell, 0.98, 0.02)
    k = rng.binomial(n, psi)
    return sp.csr_matrix(k.astype(float)), sp.csr_matrix(n.astype(float))


def _reads_log_p(k, n, in1):
    """The reads-only quasi-binomial test's log p-values (the labels design's rule before)."""
    coo = sp.coo_matrix(n)
    kk = np.asarray(sp.csr_matrix(k)[coo.row, coo.col]).ravel()
    strat = np.where(in1, 0, 1)
    sums, rho = rt.read_sums(lambda: iter([(0, coo.row, coo.col, kk, coo.data)]), strat, 2, n.shape[1])
    return rt.read_test(sums, rho, np.array([0]), np.array([1.0]), np.array([1]), np.array([1.0]))


def test_level_holds_where_welch_is_anti_conservative():
    # 17 vs 5 cells, 500 junctions without any difference, over four data sets.
    in1 = np.r_[np.ones(17, bool), np.zeros(5, bool)]
    perm_small, welch_small, perm_05 = [], [], []
    for seed in range(4):
        k, n = _binary_cells(22, np.full((22, 500), 0.5), seed)
        p = np.exp(pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, seed=seed))
        w = welch_per_cell(k, n, np.nonzero(in1)[0], np.nonzero(~in1)[0]).pvalue
        tested = p < 1.0
        perm_05.append(np.mean(p[tested] <= 0.05))
        perm_small.append(int((p <= 0.002).sum()))
        welch_small.append(int((w <= 0.002).sum()))
    # The permutation p-values are uniform: P(p ≤ 0.05) near 0.05 (they are discrete and
    # conservative, so a little below), and about 1 of 500 below 0.002 per data set.
    assert 0.02 <= np.mean(perm_05) <= 0.065, perm_05
    assert sum(perm_small) <= 10, perm_small
    # Welch's asymptotic p-values are far too small in the same data (the failure being fixed).
    assert sum(welch_small) >= 3 * max(sum(perm_small), 1), (welch_small, perm_small)


def test_more_power_than_the_reads_only_test_on_deep_binary_cells():
    # 22 vs 15 cells, each observing half of the ATSEs; 87 of 400 junctions differ (a cell reads 1
    # with prob. 0.4 vs 0.95: group 2's few observing cells nearly all read 1, as between the real
    # patients). Here the reads-only rule finds 10 true junctions, with the permutation test 29 (3 false).
    rng = np.random.default_rng(7)
    in1 = np.r_[np.ones(22, bool), np.zeros(15, bool)]
    diff = rng.random(400) < 0.2
    p_cell = np.tile(np.where(diff, 0.4, 0.5), (37, 1))
    p_cell[~in1] = np.where(diff, 0.95, 0.5)
    k, n = _binary_cells(37, p_cell, 1, observed=0.5)
    perm = bh_qvalues(pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05)) <= 0.05
    reads = _reads_log_p(k, n, in1)
    bound = np.abs(reads.effect) - 1.645 * reads.se

    def calls(perm_qvalue=None):
        return call_rows(
            np.ones(400),
            np.zeros(400),
            0.05,
            0.1,
            reads_qvalue=bh_qvalues(reads.log_pvalue),
            reads_bound=bound,
            perm_qvalue=perm_qvalue,
        )

    before, now = calls(), calls(np.where(perm, 0.0, 1.0))
    true_before, true_now = int((before & diff).sum()), int((now & diff).sum())
    assert int((now & ~diff).sum()) <= 0.1 * max(int(now.sum()), 1), int((now & ~diff).sum())
    assert true_now >= 2 * true_before and true_now >= 20, (true_now, true_before)


def test_untestable_junctions_reproducibility_and_size_guard():
    in1 = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    k, n = _binary_cells(20, np.full((20, 30), 0.5), 3)
    n = n.tolil()
    n[10:, 0] = 0  # junction 0: no observing cell in group 2
    n[11:, 1] = 0  # junction 1: one observing cell in group 2
    n = sp.csr_matrix(n)
    a = pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, seed=4)
    b = pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, seed=4)
    assert np.array_equal(a, b)
    assert a[0] == 0.0 and a[1] == 0.0 and (a[2:] <= 0).all() and (a[2:] < 0).sum() >= 25
    # Too large a comparison is not permuted (None: the caller keeps the asymptotic tests only).
    assert not pt.affordable(20_000, 30_000) and pt.affordable(37, 647)
    assert pt.n_permutations(600, 0.05) == 48_000


def test_labels_move_only_within_blocks_that_hold_both_groups():
    # Junctions differ between two blocks (batches) only. A within-block permutation keeps each
    # block's share of group 1, so its p-values stay uniform; an unblocked one reads the block
    # effect as a group effect.
    blocks = np.repeat([0, 1], 20)
    # Group 1 leans to block 1 (3 of its 20 cells in block 0, 17 in block 1).
    in1 = np.r_[np.arange(20) < 3, np.arange(20) < 17]
    p_cell = np.where(blocks[:, None] == 0, 0.1, 0.9) * np.ones((40, 50))
    k, n = _binary_cells(40, p_cell, 5)
    free = np.exp(pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, seed=1))
    blocked = np.exp(pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, blocks=blocks, seed=1))
    assert np.median(blocked) > 0.2 and np.median(free) < 0.05, (np.median(blocked), np.median(free))
    # Blocks that hold one group only cannot move a label: the permutation ignores them.
    whole = np.exp(pt.permutation_log_pvalues(k, n, in1, fdr_target=0.05, blocks=in1.astype(int), seed=1))
    assert np.allclose(whole, free)


def _null_depths(depth1, depth2, seed, n1=40, n2=8, n_junctions=400):
    """Same PSI in both groups (cells spread around 0.6), different reads per observing cell."""
    rng = np.random.default_rng(seed)
    in1 = np.r_[np.ones(n1, bool), np.zeros(n2, bool)]
    depth = np.where(in1, depth1, depth2)[:, None]
    shape = (n1 + n2, n_junctions)
    n = rng.poisson(depth, shape) * (rng.random(shape) < 0.7)
    k = rng.binomial(n, rng.beta(3.0, 2.0, shape))
    return sp.csr_matrix(k.astype(float)), sp.csr_matrix(n.astype(float)), in1


def test_level_holds_when_the_groups_differ_in_reads_per_cell():
    # Group 2 expresses the genes less. Raw per-cell PSI is then not exchangeable between the groups
    # (a permutation of Welch's t on it called 30 such junctions in bench/ds_call_rules.py, two
    # types that differ in expression); the standardised residuals nearly are while the depths
    # stay within MAX_DEPTH_RATIO (15 vs 6 reads here) ...
    rates = []
    for seed in range(3):
        k, n, in1 = _null_depths(15, 6, seed)
        log_p = pt.permutation_log_pvalues(k, n, in1, 0.05, seed=seed)
        p = np.exp(log_p)[log_p < 0]
        assert p.size > 300
        rates.append((np.mean(p <= 0.05), np.mean(p <= 0.01)))
    at05, at01 = np.mean(rates, axis=0)
    assert 0.02 <= at05 <= 0.075 and at01 <= 0.025, rates
    # ... and beyond it (2 reads against 50, where the residuals' p-values fell below 0.05 for
    # 9.5 % of the junctions) a junction is not permuted at all.
    k, n, in1 = _null_depths(50, 2, 0)
    assert (pt.permutation_log_pvalues(k, n, in1, 0.05) == 0).mean() > 0.95
