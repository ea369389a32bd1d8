"""Model-independent statistics of differential splicing (splicevi.tl.differential, tl.metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from splicevi.tl import differential as ds
from splicevi.tl.metrics import call_quality, clustering_agreement, ranking_quality


def test_change_probability_modes():
    dpsi = np.array([[0.3, 0.05, -0.2], [0.2, -0.05, -0.3], [0.15, 0.0, 0.05], [0.0, 0.02, -0.4]])
    proba, bf = ds.change_probability(dpsi, delta=0.1)
    np.testing.assert_allclose(proba, [0.75, 0.0, 0.75])
    assert bf[0] > 0 > bf[1]
    proba_v, bf_v = ds.change_probability(dpsi, mode="vanilla")
    np.testing.assert_allclose(proba_v, [0.75, 0.5, 0.75])
    assert bf_v[2] < 0  # mostly negative ΔPSI: signed Bayes factor


def test_fdr_calls_hand_case():
    proba = np.array([0.99, 0.2, 0.97, 0.9, np.nan, 0.5])
    # Sorted: 0.99, 0.97, 0.9, 0.5 → expected FDR 0.01, 0.02, 0.0467, 0.16.
    calls = ds.fdr_calls(proba, 0.05)
    np.testing.assert_array_equal(calls, [True, False, True, True, False, False])
    assert not ds.fdr_calls(np.array([0.5, 0.4]), 0.05).any()


def test_bootstrap_group_means_keeps_the_mean():
    rng = np.random.default_rng(0)
    samples = np.broadcast_to(np.linspace(0, 1, 50)[None, :, None], (200, 50, 3))
    means = ds.bootstrap_group_means(samples, rng)
    assert means.shape == (200, 3)
    np.testing.assert_allclose(means.mean(), 0.5, atol=0.02)
    assert means.std() > 0


def test_pooled_psi():
    k = sp.csr_matrix(np.array([[1, 3, 0], [0, 0, 0], [2, 2, 5]], dtype=float))
    n = sp.csr_matrix(np.array([[4, 4, 0], [0, 0, 0], [4, 4, 5]], dtype=float))
    psi, nobs = ds.pooled_psi(k, n, np.array([0, 1, 2]))
    np.testing.assert_allclose(psi, [3 / 8, 5 / 8, 1.0])
    np.testing.assert_array_equal(nobs, [2, 2, 1])
    psi1, nobs1 = ds.pooled_psi(k, n, np.array([1]))
    assert np.isnan(psi1).all() and (nobs1 == 0).all()


def test_event_level_aggregation():
    codes = np.array([1, 0, 1, 0, 2])
    junctions = pd.DataFrame(
        {
            "junction_id": ["a", "b", "c", "d", "e"],
            "event_id": ["E1", "E0", "E1", "E0", "E2"],
            "effect_size": [0.3, -0.05, -0.3, 0.05, 0.01],
            "emp_effect": [0.25, np.nan, -0.2, 0.1, 0.0],
        }
    )
    dpsi = np.tile(junctions["effect_size"].to_numpy(), (10, 1))
    dpsi[:3, 2] = 0.0  # junction c moves in 7 of 10 samples, a in all
    ev = ds.event_level(dpsi, junctions, codes, delta=0.1)
    ev = ev.set_index("event_id")
    assert ev.loc["E1", "proba_ds"] == 1.0  # a moves in every sample
    assert ev.loc["E0", "proba_ds"] == 0.0
    assert ev.loc["E1", "best_junction"] in ("a", "c")
    assert ev.loc["E0", "best_junction"] in ("b", "d")
    np.testing.assert_allclose(ev.loc["E1", "max_abs_dpsi"], 0.3)
    np.testing.assert_allclose(ev.loc["E0", "emp_max_abs_dpsi"], 0.1)
    assert ev.loc["E1", "is_ds_fdr"] and not ev.loc["E0", "is_ds_fdr"]
    assert ev.loc["E2", "n_junctions"] == 1


def test_metrics():
    assert clustering_agreement([0, 0, 1, 1], ["a", "a", "b", "b"])["ari"] == 1.0
    q = ranking_quality([True, False, True, False], [0.9, 0.1, np.nan, 0.2])
    assert q["auroc"] == 0.5  # the unscored true positive ranks last
    c = call_quality([True, False, True], [True, True, False])
    assert c["empirical_fdr"] == 0.5 and c["power"] == 0.5
    assert call_quality([True], [False])["empirical_fdr"] == 0.0
