"""Splicing likelihoods against scipy, on observed entries only."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from splicevi.distributions import (
    beta_binomial_log_prob,
    binomial_log_prob,
    dirichlet_multinomial_log_prob,
    segment_log_softmax,
)
from splicevi.module import observed_entries

rng = np.random.default_rng(0)


def _random_counts(size):
    n = rng.integers(1, 30, size=size)
    n[:3] = 1  # single-read ATSEs
    k = rng.binomial(n, rng.random(size))
    k[3:6] = 0  # observed PSI = 0
    k[6:8] = n[6:8]  # PSI = 1
    return k.astype(np.float64), n.astype(np.float64)


def test_binomial_matches_scipy():
    k, n = _random_counts(50)
    logits = rng.normal(0, 2, size=50)
    p = 1 / (1 + np.exp(-logits))
    got = binomial_log_prob(torch.tensor(k), torch.tensor(n), torch.tensor(logits)).numpy()
    np.testing.assert_allclose(got, stats.binom.logpmf(k, n, p), rtol=1e-6, atol=1e-8)


def test_beta_binomial_matches_scipy():
    k, n = _random_counts(50)
    logits = rng.normal(0, 2, size=50)
    phi = rng.uniform(0.5, 50, size=50)
    p = 1 / (1 + np.exp(-logits))
    got = beta_binomial_log_prob(
        torch.tensor(k), torch.tensor(n), torch.tensor(logits), torch.tensor(phi)
    ).numpy()
    np.testing.assert_allclose(
        got, stats.betabinom.logpmf(k, n, p * phi, (1 - p) * phi), rtol=1e-6, atol=1e-8
    )


def test_dirichlet_multinomial_matches_scipy_per_atse():
    sizes = [2, 3, 4, 2, 5, 2]
    group = np.repeat(np.arange(len(sizes)), sizes)
    logits = rng.normal(0, 1.5, size=group.shape[0])
    k = rng.integers(0, 6, size=group.shape[0]).astype(np.float64)
    k[group == 0] = [0, 1]  # single-read ATSE
    k[group == 3] = [0, 7]  # a junction with PSI 0
    phi = rng.uniform(1, 40, size=len(sizes))
    log_p = segment_log_softmax(torch.tensor(logits), torch.tensor(group), len(sizes))
    got = dirichlet_multinomial_log_prob(
        torch.tensor(k), log_p, torch.tensor(phi), torch.tensor(group), len(sizes)
    ).numpy()
    for g in range(len(sizes)):
        sel = group == g
        p = np.exp(logits[sel]) / np.exp(logits[sel]).sum()
        expected = stats.dirichlet_multinomial.logpmf(k[sel], p * phi[g], int(k[sel].sum()))
        assert got[g] == pytest.approx(expected, rel=1e-6, abs=1e-8)
    # The softmax is within each ATSE.
    sums = torch.zeros(len(sizes), dtype=torch.float64).index_add_(0, torch.tensor(group), log_p.exp())
    np.testing.assert_allclose(sums.numpy(), 1.0)


def _tensor(m):
    m = sp.csr_matrix(m, dtype=np.float32)
    return torch.sparse_csr_tensor(
        torch.tensor(m.indptr), torch.tensor(m.indices), torch.tensor(m.data), size=m.shape
    )


def _maps(codes):
    codes = torch.tensor(codes)
    order = torch.argsort(codes, stable=True)
    sizes = torch.bincount(codes)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(sizes, 0)])
    return codes, ptr, order


def test_unobserved_entries_contribute_nothing_and_derived_equals_stored():
    codes = np.array([0, 0, 1, 1, 1, 2, 2])
    k = np.array(
        [
            [3, 0, 0, 0, 0, 1, 1],  # event 0 observed with PSI 0 on junction 1; event 1 unobserved
            [0, 0, 2, 0, 5, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],  # no splicing coverage at all
        ]
    )
    m = sp.csr_matrix((np.ones(7), (np.arange(7), codes)))
    n = ((sp.csr_matrix(k) @ m) @ m.T).toarray() * (((sp.csr_matrix(k) @ m) @ m.T).toarray() > 0)
    junc2atse, ptr, order = _maps(codes)
    derived = observed_entries(_tensor(k), junc2atse, ptr, order)
    stored = observed_entries(_tensor(k), junc2atse, ptr, order, atse_counts=_tensor(n))
    key = lambda o: sorted(zip(o.rows.tolist(), o.cols.tolist(), o.k.tolist(), o.n.tolist(), strict=True))  # noqa: E731
    assert key(derived) == key(stored)
    # Observed = n > 0: 2 + 2 junctions in cell 0 (events 0, 2), 3 in cell 1 (event 1); none in cell 2.
    assert len(key(derived)) == 7
    assert (0, 1, 0.0, 3.0) in key(derived)
    assert derived.cell_has_splicing().tolist() == [True, True, False]
    assert derived.n_groups == 3
