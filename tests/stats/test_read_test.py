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


def _test(k, n, cells1, cells2, delta=0.0):
    """The read test of two groups of rows of ``k`` / ``n`` (one stratum each), and the over-all ρ."""
    cells = np.concatenate([cells1, cells2])
    stratum = np.r_[np.zeros(len(cells1), int), np.ones(len(cells2), int)]
    sums = rt.ReadSums(2, k.shape[1])
    nn = sp.csr_matrix(n)[cells].tocoo()
    k_at = np.asarray(sp.csr_matrix(k)[cells][nn.row, nn.col]).ravel()
    sums.add(stratum, nn.row, nn.col, k_at, nn.data)
    rho, overall = sums.overdispersion()
    sums.add_weighted(stratum, nn.row, nn.col, k_at, nn.data, rho)
    one, w = np.array([0]), np.array([1.0])
    return rt.read_test(sums, rho, one, w, np.array([1]), w, delta=delta), overall


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


def _two_groups(rng, psi1, psi2, n_cells, observed, mean_reads, rho=0.05):
    k1, n1 = _beta_binomial_cells(rng, psi1, n_cells, rho=rho, observed=observed, mean_reads=mean_reads)
    k2, n2 = _beta_binomial_cells(rng, psi2, n_cells, rho=rho, observed=observed, mean_reads=mean_reads)
    k, n = sp.vstack([k1, k2]).tocsr(), sp.vstack([n1, n2]).tocsr()
    return k, n, np.arange(n_cells), np.arange(n_cells, 2 * n_cells)


def test_interval_pvalues_are_calibrated_at_the_boundary():
    # True |ΔPSI| exactly delta: the interval null holds at its edge, so p ≤ 0.05 about 5 % of the time.
    rng = np.random.default_rng(3)
    psi1 = rng.uniform(0.2, 0.8, 3000)
    k, n, g1, g2 = _two_groups(rng, psi1, psi1 + 0.1, 300, observed=0.2, mean_reads=4)
    res, _ = _test(k, n, g2, g1, delta=0.1)
    tested = np.isfinite(res.effect)
    p = np.exp(res.log_pvalue_interval[tested])
    assert tested.sum() > 2500
    assert 0.025 <= np.mean(p <= 0.05) <= 0.07, np.mean(p <= 0.05)


def test_interval_method_keeps_the_fdr_of_large_changes_when_many_sit_just_below_delta():
    # 1,800 junctions change by 0.095 (below delta), 200 by 0.3. Point-null BH selects nearly all of
    # them (each is a real change), and a 95 % bound then lets a few percent of the near-boundary
    # ones through: a quarter of the bh rule's calls change by less than delta. fdr_method="interval"
    # (BH on the interval-null score p-values) keeps that share within the target.
    rng = np.random.default_rng(4)
    psi1 = rng.uniform(0.25, 0.6, 2000)
    true_big = np.arange(2000) < 200
    psi2 = psi1 + np.where(true_big, 0.3, 0.095)
    k, n, g1, g2 = _two_groups(rng, psi1, psi2, 400, observed=0.3, mean_reads=6)
    res, _ = _test(k, n, g2, g1, delta=0.1)
    none = np.ones(2000)
    point = ds.call_rows(
        none,
        np.zeros(2000),
        0.05,
        0.1,
        reads_qvalue=ds.bh_qvalues(res.log_pvalue),
        reads_bound=ds.confident_change(res.effect, res.se),
    )
    interval = ds.call_rows(
        none,
        np.zeros(2000),
        0.05,
        0.1,
        interval_qvalue=none,
        fdr_method="interval",
        reads_interval_qvalue=ds.bh_qvalues(res.log_pvalue_interval),
    )
    below = lambda calls: (calls & ~true_big).sum() / max(calls.sum(), 1)  # noqa: E731
    assert below(point) > 0.075, below(point)
    assert below(interval) <= 0.05, below(interval)
    assert (interval & true_big).sum() >= 0.9 * true_big.sum()


def test_interval_test_does_not_trust_psi_of_zero_or_one_from_a_few_reads():
    # Group 1 reads the junction in every read of its few cells (PSI 1), group 2 at 0.8: a Wald
    # variance at the groups' own PSI is nearly zero there; the score variance at the boundary is not.
    y1, f1 = np.array([1.0]), np.array([1.0 / 8])  # eight effective reads, all for the junction
    y2, f2 = np.array([0.8]), np.array([1.0 / 400])
    log_p = rt.interval_log_pvalue(y1, f1, y2, f2, np.zeros(1), 0.1)
    assert np.exp(log_p[0]) > 0.05
    wald_se = np.sqrt(y1 * (1 - y1) * f1 + y2 * (1 - y2) * f2)
    assert (y1 - y2 - 0.1 - 1.645 * wald_se)[0] > 0  # the fixed bound would have called it


def test_constrained_fit_satisfies_the_constraint_and_maximises():
    y1, y2 = np.array([0.9, 0.2, 0.5]), np.array([0.3, 0.25, 0.5])
    w1, w2 = np.array([10.0, 50.0, 3.0]), np.array([20.0, 5.0, 3.0])
    for shift in (0.1, -0.1):
        p1, p2 = rt.constrained_psi(y1, w1, y2, w2, np.full(3, shift))
        np.testing.assert_allclose(p1 - p2, shift, atol=1e-12)

        def loglik(a, b):
            return w1 * (y1 * np.log(a) + (1 - y1) * np.log1p(-a)) + w2 * (
                y2 * np.log(b) + (1 - y2) * np.log1p(-b)
            )

        best = loglik(p1, p2)
        for eps in (-1e-3, 1e-3):
            assert np.all(loglik(p1 + eps, p2 + eps) <= best + 1e-12)
