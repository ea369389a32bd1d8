"""Model-independent statistics of differential splicing (splicevi.stats.differential, tl.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from splicevi.stats import differential as ds
from splicevi.tl.metrics import call_quality, clustering_agreement, ranking_quality


def _moments(k, n, stratum, n_strata, p=None, rho=None):
    """GroupMoments of dense cells × junctions k, n (n == 0: unobserved) in one minibatch."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    rows, cols = np.nonzero(n > 0)
    p = np.full(k.shape, 0.5) if p is None else np.asarray(p, float)
    mom = ds.GroupMoments.zeros(n_strata, k.shape[1])
    mom.add(np.asarray(stratum), p, rows, cols, k[rows, cols], n[rows, cols], rho)
    return mom


def _beta_binomial_cells(rng, psi, n_cells, conc, mean_reads, obs_frac):
    """Cells × junctions (k, n): each cell draws its own PSI from Beta(psi·c, (1−psi)·c)."""
    n_j = psi.shape[0]
    observed = rng.random((n_cells, n_j)) < obs_frac
    n = np.where(observed, 1 + rng.poisson(mean_reads - 1, (n_cells, n_j)), 0)
    cell_psi = rng.beta(psi * conc, (1 - psi) * conc, (n_cells, n_j))
    return rng.binomial(n, cell_psi), n


def test_constant_model_gives_pooled_psi():
    k = np.array([[1, 3, 0], [0, 0, 0], [2, 2, 5]])
    n = np.array([[4, 4, 0], [0, 0, 0], [4, 4, 5]])
    est = ds.group_estimate(_moments(k, n, [0, 0, 0], 1, p=np.full((3, 3), 0.3)))
    # A constant decoded PSI is corrected away entirely: the estimate is Σk / Σn.
    np.testing.assert_allclose(est.mean, [3 / 8, 5 / 8, 1.0])
    np.testing.assert_allclose(est.pooled, [3 / 8, 5 / 8, 1.0])
    np.testing.assert_array_equal(est.n_obs, [2, 2, 1])
    # One observing cell: only the reads' own noise, ψ(1 − ψ)/n at ψ = (5 + ½)/(5 + 1), n = 5.
    np.testing.assert_allclose(est.var[2], (5.5 / 6) * (0.5 / 6) / 5)
    # Degrees of freedom: the observing cells' (m − 1) plus the moderation's prior ones (three
    # junctions are too few to estimate the prior's weight: its default).
    assert est.df[2] == ds.DEFAULT_PRIOR_DF and est.df[0] == 1 + ds.DEFAULT_PRIOR_DF
    none = ds.group_estimate(_moments(k[[1]], n[[1]], [0], 1))
    assert np.isnan(none.var).all() and (none.df == 0).all()  # no observing cell: untestable


def test_variance_covers_cell_to_cell_overdispersion():
    # Many replicate groups of overdispersed cells: the standardised error must be ≈ N(0, 1).
    rng = np.random.default_rng(0)
    psi = rng.uniform(0.1, 0.9, 400)
    k, n = _beta_binomial_cells(rng, psi, 60, conc=5.0, mean_reads=10, obs_frac=0.5)
    est = ds.group_estimate(_moments(k, n, np.zeros(60, int), 1))
    z = (est.mean - psi) / np.sqrt(est.var)
    assert 0.85 < np.std(z) < 1.2, np.std(z)
    # The reads' binomial variance alone would be far too small here.
    binomial = est.pooled * (1 - est.pooled) / n.sum(axis=0)
    assert np.median(est.var / binomial) > 2


def test_rest_is_the_cells_present():
    # The rest: 100 cells at PSI 0.8 with 10 reads each, 100 cells at PSI 0.2 with 1 read each.
    rng = np.random.default_rng(1)
    k1, n1 = _beta_binomial_cells(rng, np.array([0.8]), 100, 1e4, 10, 1.0)
    k2, n2 = _beta_binomial_cells(rng, np.array([0.2]), 100, 1e4, 1.01, 1.0)
    k, n = np.vstack([k1, k2]), np.vstack([n1, n2])
    strat = ds.group_estimate(_moments(k, n, np.r_[np.zeros(100, int), np.ones(100, int)], 2))
    assert abs(strat.mean[0] - 0.5) < 0.05  # each cell counts once
    assert strat.pooled[0] > 0.65  # pooled reads let the well-covered half dominate


def test_interval_null_pvalues_and_evidence_resolution():
    def est(mean, var, df=50.0):
        mean = np.asarray(mean, float)
        return ds.GroupEstimate(
            mean, np.full_like(mean, var), np.full_like(mean, df), np.full_like(mean, 20), mean
        )

    g1 = est([0.1, 0.2, 0.6, 0.9, 0.95], 1e-4)
    g2 = est([0.1, 0.1, 0.1, 0.1, 0.1], 1e-4)
    test = ds.difference_test(g1, g2, delta=0.1)
    p = np.exp(test.log_pvalue_interval)
    assert p[0] == pytest.approx(1.0) and p[1] == pytest.approx(0.5, abs=1e-3)  # no change; exactly delta
    assert p[2] < 1e-10 and np.all(np.diff(test.log_pvalue_interval[2:]) < 0)  # stronger → smaller, no floor
    # The point null ΔPSI = 0: no change gives 1, a change of exactly delta is already strong.
    assert test.pvalue[0] == pytest.approx(1.0) and test.pvalue[1] < 1e-8
    assert np.all(np.diff(test.log_pvalue[1:]) < 0)
    # Strong and very strong evidence stay apart: finite, increasing log odds; no exact 0 / 1 ties.
    assert np.all(np.isfinite(test.log_odds)) and np.all(np.diff(test.log_odds[2:]) > 1)
    assert test.proba[0] < 0.01
    # A junction with little information is not "probably changed" for lack of data.
    prior = (np.array([0.0, 0.1]), np.array([0.5, 0.5]))
    vague = ds.difference_test(est([0.5], 0.05), est([0.5], 0.05), delta=0.1, prior=prior)
    assert vague.proba[0] < 0.5 and vague.pvalue[0] == pytest.approx(1.0)
    assert np.exp(vague.log_pvalue_interval[0]) == pytest.approx(1.0)
    van = ds.difference_test(g1, g2, mode="vanilla")
    assert van.log_odds[2] > 0 and van.pvalue[0] == pytest.approx(1.0)


def test_scale_mixture_prior_finds_the_null_share():
    rng = np.random.default_rng(4)
    truth = np.where(rng.random(5000) < 0.1, rng.normal(0, 0.3, 5000), 0.0)
    se = rng.uniform(0.02, 0.1, 5000)
    sigmas, weights = ds.fit_scale_mixture(truth + rng.normal(0, se), se**2)
    assert 0.85 < weights[sigmas == 0].sum() + weights[sigmas == 0.01].sum() < 0.95, weights
    # The local FDR of a clear change is small, of a clear non-change close to 1.
    yes, no = ds.posterior_tails(np.array([0.5, 0.0]), np.array([0.05**2] * 2), (sigmas, weights), 0.1)
    assert np.exp(no[0]) < 1e-3 and np.exp(no[1]) > 0.95 and yes[0] > no[0]


def test_lfdr_qvalues_hand_case():
    q = ds.lfdr_qvalues(np.array([0.2, 0.01, 0.05, np.nan]))
    np.testing.assert_allclose(q, [0.26 / 3, 0.01, 0.03, 1.26 / 4])


def test_bh_qvalues_hand_case():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    # Sorted 0.01, 0.03, 0.04, 0.5 → 0.04, min(0.06, 0.0533), 0.0533, 0.5 (step-up minimum).
    q = ds.bh_qvalues(np.log(p))
    np.testing.assert_allclose(q, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    np.testing.assert_array_equal(ds.fdr_calls(q, 0.05), [True, False, False, False])
    assert not ds.fdr_calls(np.array([np.nan]), 0.5).any()


def test_fdr_holds_one_vs_rest_with_unequal_coverage():
    # Model-free (constant decoded PSI): group vs a rest of two sub-groups covered 10× apart.
    rng = np.random.default_rng(2)
    n_j = 2000
    base = rng.uniform(0.1, 0.9, n_j)
    other = base.copy()
    is_ds = rng.random(n_j) < 0.2
    shift = np.where(rng.random(n_j) < 0.5, -1, 1) * rng.uniform(0.12, 0.4, n_j)
    g_psi = np.clip(np.where(is_ds, base + shift, base), 0.02, 0.98)
    other[~is_ds & (rng.random(n_j) < 0.3)] += 0.15  # rest sub-group B differs alone: |true Δ| < delta
    other = np.clip(other, 0.02, 0.98)
    kg, ng = _beta_binomial_cells(rng, g_psi, 80, 20, 8, 0.3)
    ka, na = _beta_binomial_cells(rng, base, 150, 20, 12, 0.5)
    kb, nb = _beta_binomial_cells(rng, other, 150, 20, 3, 0.1)
    mom = _moments(np.vstack([kg, ka, kb]), np.vstack([ng, na, nb]), np.repeat([0, 1, 2], [80, 150, 150]), 3)
    g1, g2 = ds.group_estimate(mom.subset([0])), ds.group_estimate(mom.subset([1, 2]))
    test = ds.difference_test(g1, g2, delta=0.1)
    truth = np.abs(g_psi - (base + other) / 2) > 0.1
    q_point = ds.bh_qvalues(test.log_pvalue)
    for target in (0.05, 0.1):
        # The interval null (fdr_method="interval") and the default calls (point null, BH, and a
        # change of at least delta with confidence) both hold the target.
        interval = call_quality(truth, ds.fdr_calls(ds.bh_qvalues(test.log_pvalue_interval), target))
        assert interval["n_calls"] > 50 and interval["empirical_fdr"] <= 1.5 * target, interval
        default = call_quality(truth, ds.call_rows(q_point, test.effect, target, 0.1, se=test.se))
        assert default["empirical_fdr"] <= 1.5 * target and default["power"] > interval["power"], (
            default,
            interval,
        )
        # A filter on the bare estimate lets the changes just below delta through.
        bare = call_quality(truth, ds.call_rows(q_point, test.effect, target, 0.1))
        assert bare["empirical_fdr"] > 1.5 * target, bare
    quality = default
    # Many unchanged junctions sit just below delta here (0.075): the local FDR's unimodal prior
    # cannot see that gap, and its calls overshoot the target (why ``bh`` is the default).
    lfdr_calls = ds.fdr_calls(ds.lfdr_qvalues(np.exp(test.log_lfdr)), 0.05)
    assert call_quality(truth, lfdr_calls)["power"] > quality["power"]


def test_evidence_order_beats_pooled_dpsi_when_coverage_varies():
    # Two groups; junctions covered from 2 % to 40 % of the cells: |pooled ΔPSI| is noisy where
    # coverage is thin, the p-value order knows it.
    rng = np.random.default_rng(3)
    n_j = 1500
    psi = rng.uniform(0.1, 0.9, n_j)
    is_ds = rng.random(n_j) < 0.15
    psi2 = np.clip(
        np.where(is_ds, psi + np.where(psi < 0.5, 1, -1) * rng.uniform(0.15, 0.35, n_j), psi), 0.02, 0.98
    )
    cover = rng.uniform(0.02, 0.4, n_j)
    k1, n1 = _beta_binomial_cells(rng, psi, 120, 20, 10, cover)
    k2, n2 = _beta_binomial_cells(rng, psi2, 120, 20, 10, cover)
    mom = _moments(np.vstack([k1, k2]), np.vstack([n1, n2]), np.repeat([0, 1], 120), 2)
    g1, g2 = ds.group_estimate(mom.subset([0])), ds.group_estimate(mom.subset([1]))
    test = ds.difference_test(g1, g2, delta=0.1)
    truth = np.abs(psi - psi2) > 0.1
    order = ranking_quality(truth, -test.log_pvalue)["auprc"]
    pooled = ranking_quality(truth, np.abs(g1.pooled - g2.pooled))["auprc"]
    assert order > pooled + 0.02, (order, pooled)
    calls = call_quality(truth, ds.fdr_calls(ds.bh_qvalues(test.log_pvalue), 0.05))
    assert calls["n_calls"] > 30 and calls["empirical_fdr"] <= 0.075, calls


def test_pooled_psi():
    k = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 2, 5]], dtype=float))
    n = sp.csr_matrix(np.array([[4, 4, 0], [0, 0, 0], [4, 4, 5]], dtype=float))
    psi, nobs = ds.pooled_psi(k, n, np.array([0, 1, 2]))
    np.testing.assert_allclose(psi, [3 / 8, 5 / 8, 1.0])
    np.testing.assert_array_equal(nobs, [2, 2, 1])
    psi1, nobs1 = ds.pooled_psi(k, n, np.array([1]))
    assert np.isnan(psi1).all() and (nobs1 == 0).all()


def test_event_level_simes():
    codes = np.array([1, 0, 1, 0, 2])
    log10_p = np.log10([0.001, 0.5, 0.02, 0.6, 1.0])
    junctions = pd.DataFrame(
        {
            "junction_id": ["a", "b", "c", "d", "e"],
            "event_id": ["E1", "E0", "E1", "E0", "E2"],
            "effect_size": [0.3, -0.05, -0.35, 0.05, 0.01],
            "emp_effect": [0.25, np.nan, -0.2, 0.1, 0.0],
            "log10_pvalue": log10_p,
            "proba_ds": [0.99, 0.1, 0.9, 0.1, 0.0],
            "bayes_factor": [4.6, -2.2, 2.2, -2.2, -9.0],
            "log10_lfdr": np.log10([0.01, 0.9, 0.1, 0.9, 1.0]),
        }
    )
    table = ds.event_level(junctions, codes, fdr_target=0.05)
    ev = table.set_index("event_id")
    # Simes: E1 = min(0.001·2/1, 0.02·2/2) = 0.002; E0 = min(0.5·2, 0.6) = 0.6.
    np.testing.assert_allclose(ev.loc[["E1", "E0", "E2"], "pvalue"], [0.002, 0.6, 1.0])
    assert ev.loc["E1", "best_junction"] == "a" and ev.loc["E1", "proba_ds"] == 0.99
    np.testing.assert_allclose(ev.loc[["E1", "E0"], "lfdr"], [0.01, 0.9])  # the smallest of the ATSE
    np.testing.assert_allclose(ev.loc["E1", "max_abs_dpsi"], 0.35)
    np.testing.assert_allclose(ev.loc["E0", "emp_max_abs_dpsi"], 0.1)
    assert ev.loc["E1", "is_ds_fdr"] and not ev.loc["E0", "is_ds_fdr"]
    assert ev.loc["E2", "n_junctions"] == 1
    ordered = ds.sort_table(table.reset_index(drop=True), "bh")
    assert list(ordered["event_id"]) == ["E1", "E0", "E2"]


def test_metrics():
    assert clustering_agreement([0, 0, 1, 1], ["a", "a", "b", "b"])["ari"] == 1.0
    q = ranking_quality([True, False, True, False], [0.9, 0.1, np.nan, 0.2])
    assert q["auroc"] == 0.5  # the unscored true positive ranks last
    c = call_quality([True, False, True], [True, True, False])
    assert c["empirical_fdr"] == 0.5 and c["power"] == 0.5
    assert call_quality([True], [False])["empirical_fdr"] == 0.0


def test_bh_lfdr_calls_are_the_union_of_both_rules():
    """``fdr_method="bh_lfdr"`` (the default): the bh calls and the lfdr calls together."""
    from splicevi.stats.differential import call_rows

    q = np.array([0.01, 0.5, 0.01, 0.5])
    effect = np.array([0.4, 0.3, 0.12, 0.3])
    se = np.full(4, 0.05)
    lfdr_q = np.array([0.5, 0.01, 0.5, 0.5])
    calls = call_rows(q, effect, 0.05, 0.1, None, lfdr_q, "bh_lfdr", se=se)
    # Row 0: a bh call; row 1: an lfdr call; row 2: bh q passes but the confident change
    # (0.12 − 1.645·0.05) is below delta; row 3: neither.
    assert calls.tolist() == [True, True, False, False]
    assert call_rows(q, effect, 0.05, 0.1, None, lfdr_q, "bh", se=se).tolist() == [True, False, False, False]
    assert call_rows(q, effect, 0.05, 0.1, None, lfdr_q, "lfdr", se=se).tolist() == [
        False,
        True,
        False,
        False,
    ]


def test_t_likelihood_nodes_reproduce_student_t():
    """The normal mixture over the precision's quantiles is the Student-t density (heavy tails kept)."""
    from scipy import stats

    from splicevi.stats.differential import t_likelihood_variances

    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    for df in (3.0, 8.0, 30.0):
        v = t_likelihood_variances(np.ones(1), np.array([df]))[0]
        mix = np.mean(np.exp(-0.5 * x[:, None] ** 2 / v[None, :]) / np.sqrt(2 * np.pi * v[None, :]), axis=1)
        np.testing.assert_allclose(mix, stats.t.pdf(x, df), rtol=0.15)
    # No degrees of freedom: the normal itself.
    assert t_likelihood_variances(np.array([0.04]), None).shape == (1, 1)


def test_posterior_on_few_cells_is_not_overconfident():
    """A change whose variance rests on a few cells' degrees of freedom keeps a sizeable lfdr.

    Among junctions with a fifth truly changed by ±0.5, an estimate of 0.6 ± 0.15 is a confident
    change when its variance is known (many degrees of freedom), and not with 3.
    """
    rng = np.random.default_rng(0)
    effect = np.r_[rng.normal(0, 0.05, 400), rng.choice([-0.5, 0.5], 100) + rng.normal(0, 0.05, 100), 0.6]
    se = np.r_[np.full(500, 0.05), 0.15]
    for df_last, (lo, hi) in ((1e6, (0.0, 0.02)), (3.0, (0.15, 0.6))):
        df = np.r_[np.full(500, 30.0), df_last]
        prior = ds.fit_scale_mixture(effect, se**2, df=df)
        _, log_in = ds.posterior_tails(effect, se**2, prior, 0.1, df=df)
        assert lo <= float(np.exp(log_in[-1])) <= hi, (df_last, float(np.exp(log_in[-1])))
