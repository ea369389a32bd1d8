"""Equivalences the fast splicing path relies on (sparse kernels == gather/scatter; new == old extraction)."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splicevi.module import observed_entries
from splicevi.nn import PartialEncoder
from splicevi.nn._entry_ops import EntryLayout, entry_dot, entry_matmul

rng = np.random.default_rng(7)


def _entries(n_rows, n_cols, n_entries, shuffle_within_rows=True):
    """Random distinct (row, col) pairs in row order; rows 0 and the last one left empty."""
    keys = rng.choice((n_rows - 2) * n_cols, size=n_entries, replace=False) + n_cols
    keys.sort()
    rows, cols = keys // n_cols, keys % n_cols
    if shuffle_within_rows:  # the kernels must not need sorted columns within a row
        perm = np.lexsort((rng.random(n_entries), rows))
        rows, cols = rows[perm], cols[perm]
    return torch.as_tensor(rows), torch.as_tensor(cols)


def _grads(fn, *tensors):
    out = fn()
    # The same upstream gradient for both formulations.
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out * weights).sum().backward()
    grads = [t.grad.clone() for t in tensors]
    for t in tensors:
        t.grad = None
    return out.detach(), grads


@pytest.mark.parametrize("n_entries", [0, 1, 400])
def test_sparse_pooling_equals_index_add(n_entries):
    n_rows, n_cols, width = 12, 50, 5
    rows, cols = _entries(n_rows, n_cols, n_entries)
    values = torch.randn(n_entries, requires_grad=True)
    dense = torch.randn(n_cols, width, requires_grad=True)
    layout = EntryLayout(rows, cols, n_rows, n_cols)
    ref, ref_grads = _grads(lambda: entry_matmul(None, rows, cols, values, dense, n_rows), values, dense)
    got, got_grads = _grads(lambda: entry_matmul(layout, rows, cols, values, dense, n_rows), values, dense)
    assert got.shape == (n_rows, width)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
    assert torch.all(got[0] == 0) and torch.all(got[-1] == 0)  # empty rows pool to zero


@pytest.mark.parametrize("n_entries", [0, 1, 400])
def test_sparse_logits_equal_gathered_dot(n_entries):
    n_rows, n_cols, width = 12, 50, 7
    rows, cols = _entries(n_rows, n_cols, n_entries)
    h = torch.randn(n_rows, width, requires_grad=True)
    weight = torch.randn(n_cols, width, requires_grad=True)
    layout = EntryLayout(rows, cols, n_rows, n_cols)
    ref, ref_grads = _grads(lambda: entry_dot(None, rows, cols, h, weight), h, weight)
    got, got_grads = _grads(lambda: entry_dot(layout, rows, cols, h, weight), h, weight)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    for g, r in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)


def _reference_observed(k: np.ndarray, codes: np.ndarray):
    """Observed entries by definition: every junction of each (cell, ATSE) with reads, as sets."""
    n_events = codes.max() + 1
    totals = np.zeros((k.shape[0], n_events))
    np.add.at(totals.T, codes, k.T)
    n = totals[:, codes]
    rows, cols = np.nonzero(n > 0)
    return {(r, c): (k[r, c], n[r, c]) for r, c in zip(rows, cols, strict=True)}


@pytest.mark.parametrize("grouped", [True, False])
def test_entry_extraction_matches_definition(grouped):
    """Derived entries from a CSR minibatch (incl. empty rows, junctions of unobserved ATSEs)."""
    sizes = rng.integers(2, 5, size=25)
    codes = np.repeat(np.arange(sizes.shape[0]), sizes)
    if not grouped:  # junctions of one ATSE scattered over the columns: the unsorted fallback
        codes = rng.permutation(codes)
    n_cells, n_junctions = 30, codes.shape[0]
    k = rng.poisson(0.6, size=(n_cells, n_junctions)) * (rng.random((n_cells, n_junctions)) < 0.3)
    k[[0, 7, -1]] = 0  # cells without splicing
    k[:, codes == 3] = 0  # an ATSE no cell observes
    module_codes = torch.as_tensor(codes)
    order = torch.argsort(module_codes, stable=True)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(module_codes), 0)])
    csr = sp.csr_matrix(k.astype(np.float32))
    minibatch = torch.sparse_csr_tensor(
        torch.as_tensor(csr.indptr, dtype=torch.long),
        torch.as_tensor(csr.indices, dtype=torch.long),
        torch.as_tensor(csr.data),
        csr.shape,
    )
    obs = observed_entries(minibatch, module_codes, ptr, order)
    expected = _reference_observed(k.astype(np.float64), codes)
    got = {
        (int(r), int(c)): (float(kk), float(nn))
        for r, c, kk, nn in zip(obs.rows, obs.cols, obs.k, obs.n, strict=True)
    }
    assert got == expected
    # Groups: one per observed (cell, ATSE), and each entry's group is its (cell, ATSE).
    assert obs.n_groups == len({(r, codes[c]) for r, c in expected})
    assert torch.equal(obs.group_row[obs.group], obs.rows)
    assert torch.equal(obs.group_event[obs.group], module_codes[obs.cols])
    # Entries come in row order, so the sparse kernels apply.
    assert obs.layout() is not None


def test_encoder_pooling_same_with_and_without_sparse_kernels():
    torch.manual_seed(0)
    n_cells, n_junctions = 9, 40
    rows, cols = _entries(n_cells, n_junctions, 120)
    codes = torch.arange(n_junctions) // 2
    ptr = torch.arange(0, n_junctions + 1, 2)
    dense_k = torch.zeros(n_cells, n_junctions)
    dense_k[rows, cols] = torch.as_tensor(rng.integers(1, 5, size=rows.shape[0]), dtype=torch.float32)
    obs = observed_entries(dense_k, codes, ptr, torch.arange(n_junctions))
    encoder = PartialEncoder(n_junctions, n_output=4, code_dim=6).eval()
    centred = obs.psi - 0.5
    fast = encoder.pool(obs, centred)
    obs.n_junctions = None  # no layout: the chunked gather/scatter path
    encoder.max_nobs = 17
    slow = encoder.pool(obs, centred)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_dm_with_per_atse_concentration_table_equals_gathered():
    """lgamma(φ) per ATSE then gathered == per group (the likelihood's shortcut)."""
    from splicevi.distributions import dirichlet_multinomial_log_prob, segment_log_softmax

    sizes = torch.as_tensor(rng.integers(2, 5, size=40))
    group = torch.repeat_interleave(torch.arange(40), sizes)
    event_of_group = torch.as_tensor(rng.integers(0, 6, size=40))
    k = torch.as_tensor(rng.poisson(1.0, size=group.shape[0]), dtype=torch.float32)
    log_p = segment_log_softmax(torch.randn(group.shape[0]), group, 40)
    phi = torch.rand(6) * 20 + 0.5
    ref = dirichlet_multinomial_log_prob(k, log_p, phi[event_of_group], group, 40)
    got = dirichlet_multinomial_log_prob(k, log_p, phi, group, 40, concentration_index=event_of_group)
    torch.testing.assert_close(got, ref)


def test_embedding_svd_equals_truncated_svd():
    """The encoder's lean SVD gives TruncatedSVD's components (same seed, same algorithm)."""
    from sklearn.decomposition import TruncatedSVD

    centred = sp.random(200, 60, density=0.2, random_state=3, format="csr", dtype=np.float32)
    centred.data -= 0.5
    encoder = PartialEncoder(60, n_output=4, code_dim=5)
    encoder.initialize_embeddings(centred, seed=0)
    vectors = TruncatedSVD(5, random_state=0).fit(centred).components_.T.astype(np.float32)
    pooled = (centred @ vectors) / np.maximum(np.diff(centred.indptr), 1)[:, None]
    expected = vectors / np.maximum(pooled.std(axis=0), 1e-6)[None, :]
    np.testing.assert_allclose(encoder.feature_embedding.detach().numpy(), expected, rtol=1e-4, atol=1e-6)


def test_centred_psi_blocks_equal_whole_matrix():
    """Centred PSI built block by block == the same formula on the whole matrix's layers."""
    from splicevi.data import layers as L

    codes = np.repeat(np.arange(50), rng.integers(2, 5, 50))
    dense = rng.poisson(0.5, (300, codes.size)) * (rng.random((300, codes.size)) < 0.15)
    dense[[0, 150]] = 0
    k = sp.csr_matrix(dense.astype(np.float32))
    whole = L.splicing_layers(k, codes)
    psi, n = whole["junc_ratio"], whole["cell_by_cluster_matrix"]
    count = np.bincount(psi.indices, minlength=codes.size)
    center = np.where(count > 0, np.bincount(psi.indices, psi.data, codes.size) / np.maximum(count, 1), 0.5)
    for kappa in (0.0, 4.0):
        want = psi.copy()
        want.data = (
            (psi.data - center.astype(np.float32)[psi.indices]) * (n.data / (n.data + kappa))
        ).astype(np.float32)
        old, L.BLOCK_ENTRIES = L.BLOCK_ENTRIES, 97  # many small blocks
        try:
            got = L.centred_psi(k, codes, prior_strength=kappa)
        finally:
            L.BLOCK_ENTRIES = old
        assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
        np.testing.assert_allclose(got.data, want.data, rtol=1e-6, atol=1e-7)
