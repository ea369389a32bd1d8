"""The reads-only quasi-binomial test of the labels design (stats.read_test)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from splicevi.stats import differential as ds
from splicevi.stats import read_test as rt


def _beta_binomial_cells(rng, psi, n_cells, rho, observed, mean_reads):
    """Cells × junctions k and n: each cell observes a junction with probability ``observed``."""
    n_junctions = psi.shape[0]
    seen = rng.random((n_cells, n_junctions)) < observed
    n = np.where(seen, 1 + rng.poisson(mean_reads - 1, (n_cells, n_junctions)), 0)
    conc = (1.0 - rho) / rho
    p_cell = rng.beta(psi * conc, (1.0 - psi) * conc, (n_cells, n_junctions))
    k = rng.binomial(n, p_cell)
    return sp.csr_matrix(k), sp.csr_matrix(n)


def _test(k, n, cells1, cells2):
    """The read test of two groups of rows of ``k`` / ``n`` (one stratum each)."""
    cells = np.concatenate([cells1, cells2])
    stratum = np.r_[np.zeros(len(cells1), int), np.ones(len(cells2), int)]
    sums = rt.ReadSums(2, k.shape[1])
    nn = sp.csr_matrix(n)[cells].tocoo()
    k_at = np.asarray(sp.csr_matrix(k)[cells][nn.row, nn.col]).ravel()
    sums.add(stratum, nn.row, nn.col, k_at, nn.data)
    rho, overall = sums.overdispersion()
    sums.add_weighted(stratum, nn.row, nn.col, k_at, nn.data, rho)
    return rt.read_test(sums, rho, np.array([0]), np.array([1.0]), np.array([1]), np.array([1.0])), overall


def test_null_pvalues_are_calibrated_at_low_coverage():
    rng = np.random.default_rng(0)
    psi = rng.uniform(0.05, 0.95, 3000)
    k, n = _beta_binomial_cells(rng, psi, 400, rho=0.05, observed=0.05, mean_reads=2)
    res, _ = _test(k, n, np.arange(200), np.arange(200, 400))
    tested = res.log_pvalue < 0
    p = np.exp(res.log_pvalue[tested])
    assert tested.sum() > 2000
    assert np.mean(p < 0.05) <= 0.065, np.mean(p < 0.05)
    assert (ds.bh_qvalues(res.log_pvalue) <= 0.05).sum() <= 2


def test_overdispersion_is_recovered_and_floored():
    rng = np.random.default_rng(1)
    psi = rng.uniform(0.1, 0.9, 2000)
    k, n = _beta_binomial_cells(rng, psi, 600, rho=0.1, observed=0.3, mean_reads=5)
    res, overall = _test(k, n, np.arange(300), np.arange(300, 600))
    assert abs(overall - 0.1) < 0.02, overall
    # No junction is taken to be less overdispersed than the junctions over all.
    assert res.rho.min() >= overall - 1e-12


def test_more_power_than_welch_at_droplet_coverage():
    rng = np.random.default_rng(2)
    psi1 = rng.uniform(0.1, 0.9, 2000)
    changed = np.arange(2000) < 400
    psi2 = np.where(changed, np.clip(psi1 + rng.choice([-0.3, 0.3], 2000), 0.02, 0.98), psi1)
    k1, n1 = _beta_binomial_cells(rng, psi1, 300, rho=0.05, observed=0.05, mean_reads=2)
    k2, n2 = _beta_binomial_cells(rng, psi2, 300, rho=0.05, observed=0.05, mean_reads=2)
    k, n = sp.vstack([k1, k2]).tocsr(), sp.vstack([n1, n2]).tocsr()
    g1, g2 = np.arange(300), np.arange(300, 600)
    res, _ = _test(k, n, g1, g2)
    calls = ds.bh_qvalues(res.log_pvalue) <= 0.05
    welch = ds.welch_per_cell(k, n, g1, g2).qvalue <= 0.05
    true_reads, true_welch = (calls & changed).sum(), (welch & changed).sum()
    assert true_reads >= 1.2 * true_welch, (true_reads, true_welch)
    assert (calls & ~changed).sum() <= 0.05 * max(calls.sum(), 1) + 2


def test_reads_rule_joins_the_calls_with_the_models_effect_filter():
    q_model = np.array([0.01, 1.0, 1.0, 1.0])
    effect = np.array([0.5, 0.0, 0.0, 0.0])
    q_reads = np.array([1.0, 0.01, 0.01, 1.0])
    bound = np.array([np.nan, 0.3, 0.05, 0.4])  # confident |ΔPSI| of the reads-only test
    calls = ds.call_rows(q_model, effect, 0.05, 0.1, reads_qvalue=q_reads, reads_bound=bound)
    assert calls.tolist() == [True, True, False, False]
    # vanilla mode (delta 0): no effect filter on either rule
    calls = ds.call_rows(q_model, effect, 0.05, 0.0, reads_qvalue=q_reads, reads_bound=bound)
    assert calls.tolist() == [True, True, True, False]
    # the interval and lfdr methods do not use the point-null rules
    calls = ds.call_rows(
        q_model, effect, 0.05, 0.1, lfdr_qvalue=np.ones(4), fdr_method="lfdr", reads_qvalue=q_reads
    )
    assert not calls.any()
