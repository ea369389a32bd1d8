"""The per-minibatch data constants the splicing path reads instead of recomputing them.

Built with the observed entries (group totals, positions of entries with reads, CSR row pointers)
or read from a table (log-factorials of counts): each must equal what it replaces, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splicevi.distributions import dirichlet_multinomial_log_prob, segment_log_softmax
from splicevi.distributions._splicing import LOG_FACTORIAL_TABLE_MAX, log_factorial
from splicevi.module import observed_entries
from splicevi.nn._entry_ops import EntryLayout

rng = np.random.default_rng(11)


def _minibatch(grouped: bool):
    sizes = rng.integers(2, 5, size=30)
    codes = np.repeat(np.arange(sizes.shape[0]), sizes)
    if not grouped:  # junctions of an ATSE scattered over the columns
        codes = rng.permutation(codes)
    n_cells, n_junctions = 40, codes.shape[0]
    k = rng.poisson(0.8, size=(n_cells, n_junctions)) * (rng.random((n_cells, n_junctions)) < 0.3)
    k[[0, 5]] = 0
    module_codes = torch.as_tensor(codes)
    order = torch.argsort(module_codes, stable=True)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(module_codes), 0)])
    csr = sp.csr_matrix(k.astype(np.float32))
    tensor = torch.sparse_csr_tensor(
        torch.as_tensor(csr.indptr, dtype=torch.long),
        torch.as_tensor(csr.indices, dtype=torch.long),
        torch.as_tensor(csr.data),
        csr.shape,
    )
    return observed_entries(tensor, module_codes, ptr, order)


@pytest.mark.parametrize("grouped", [True, False])
def test_entry_constants_equal_their_definitions(grouped):
    obs = _minibatch(grouped)
    assert obs._nonzero is not None and obs._group_sizes is not None  # built with the entries
    assert torch.equal(obs.nonzero(), (obs.k > 0).nonzero().view(-1))
    assert torch.equal(obs.group_totals(), torch.zeros(obs.n_groups).index_add_(0, obs.group, obs.k))
    counted = EntryLayout(obs.rows, obs.cols, obs.n_cells, obs.n_junctions)
    assert torch.equal(obs.layout().crow, counted.crow)
    assert all(
        torch.equal(a, b) for a, b in zip(obs.layout().transposed(), counted.transposed(), strict=True)
    )


def test_log_factorial_is_lgamma_bit_for_bit():
    x = torch.as_tensor(rng.integers(0, 5000, size=2000), dtype=torch.float32)
    assert torch.equal(log_factorial(x), torch.lgamma(x + 1.0))
    for other in (
        torch.tensor([0.5, 2.0]),
        torch.tensor([-1.0, 2.0]),
        torch.tensor([float(LOG_FACTORIAL_TABLE_MAX)]),
    ):
        assert torch.equal(log_factorial(other), torch.lgamma(other + 1.0))
    assert log_factorial(torch.zeros(0)).shape == (0,)


def test_dm_with_minibatch_constants_equals_without():
    obs = _minibatch(True)
    logits = torch.randn(obs.rows.shape[0], requires_grad=True)
    phi = (torch.rand(30) * 20 + 0.5).requires_grad_()
    results = []
    for given in (False, True):
        log_p = segment_log_softmax(logits, obs.group, obs.n_groups)
        extra = {"group_totals": obs.group_totals(), "nonzero": obs.nonzero()} if given else {}
        ll = dirichlet_multinomial_log_prob(
            obs.k, log_p, phi, obs.group, obs.n_groups, concentration_index=obs.group_event, **extra
        )
        ll.sum().backward()
        results.append((ll.detach(), logits.grad.clone(), phi.grad.clone()))
        logits.grad, phi.grad = None, None
    (a, ga, pa), (b, gb, pb) = results
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-5)
    assert torch.equal(ga, gb) and torch.equal(pa, pb)  # the constants carry no gradient
