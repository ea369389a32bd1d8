"""The Dirichlet-multinomial's gamma-function ratios as rising factorials of whole-number counts.

``lgamma(x + k) - lgamma(x)`` for a whole ``k`` is ``log x (x+1) ... (x+k-1)``; the likelihood
multiplies the factors out instead of calling ``lgamma`` (and ``digamma`` backward). Values and
gradients must equal the ``lgamma`` form up to float rounding, also past the largest count the
product form takes and for inputs it refuses (counts that are not whole numbers, huge ``x``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from splicevi.distributions import (
    count_order,
    dirichlet_multinomial_log_prob,
    log_rising_factorial,
    segment_log_softmax,
)
from splicevi.distributions._splicing import RISING_TERMS_MAX, RISING_X_MAX

rng = np.random.default_rng(5)


def test_count_order_lists_counts_descending_with_prefix_sizes():
    k = torch.tensor([0.0, 3, 1, 40, 2, 1, 0, 17, 18])
    got = count_order(k)
    assert got.order.tolist() == [3, 8, 7, 1, 4, 2, 5, 0, 6]
    assert len(got.above) == RISING_TERMS_MAX + 2
    for i, above in enumerate(got.above):
        assert above == int((k > i).sum())
    positions = torch.arange(100, 109)
    assert torch.equal(count_order(k, positions).order, positions[got.order])
    assert count_order(torch.tensor([1.0, 2.5])) is None
    assert count_order(torch.tensor([1.0, -1.0])) is None


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_rising_factorial_equals_lgamma_ratio(dtype):
    k = torch.as_tensor(np.concatenate([np.arange(0, 60), rng.integers(0, 8, size=500)]), dtype=dtype)
    x = torch.as_tensor(rng.uniform(0.01, 500, size=k.shape[0]), dtype=dtype)
    plan = count_order(k)
    xs = x[plan.order].requires_grad_()
    ks = k[plan.order]
    got = log_rising_factorial(xs, ks, plan.above)
    got.sum().backward()
    x64, k64 = xs.detach().double().requires_grad_(), ks.double()
    want = torch.lgamma(x64 + k64) - torch.lgamma(x64)
    want.sum().backward()
    tol = {"rtol": 1e-12, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 2e-4}
    torch.testing.assert_close(got.double(), want.detach(), **tol)
    torch.testing.assert_close(xs.grad.double(), x64.grad, **tol)
    assert torch.all(got[ks == 0] == 0)


def test_log_rising_factorial_falls_back_to_lgamma():
    k = torch.tensor([5.0, 2.0, 1.0])
    for x, above in (
        (torch.tensor([2.0 * RISING_X_MAX, 3.0, 0.5]), count_order(k).above),
        (torch.rand(3) + 0.1, None),
    ):
        got = log_rising_factorial(x, k, above)
        torch.testing.assert_close(got, torch.lgamma(x + k) - torch.lgamma(x))


def _groups(n_groups: int, dtype):
    sizes = rng.integers(2, 6, size=n_groups)
    group = np.repeat(np.arange(n_groups), sizes)
    k = rng.poisson(rng.choice([0.3, 3.0, 12.0], size=group.shape[0])).astype(float)
    k[::53] = rng.integers(20, 90, size=k[::53].shape[0])  # past the largest multiplied-out count
    k[group == 1] = 0  # an observed ATSE whose reads are elsewhere in the data: n = 0
    return torch.as_tensor(k, dtype=dtype), torch.as_tensor(group)


def _lgamma_form(k, log_p, phi, group, n_groups):
    """The Dirichlet-multinomial written with lgamma on every entry (the definition)."""
    zeros = torch.zeros(n_groups, dtype=k.dtype)
    n = zeros.index_add(0, group, k)
    alpha = log_p.exp() * phi[group]
    per_entry = torch.lgamma(k + alpha) - torch.lgamma(alpha) - torch.lgamma(k + 1)
    return (
        torch.lgamma(phi) - torch.lgamma(n + phi) + torch.lgamma(n + 1) + zeros.index_add(0, group, per_entry)
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dirichlet_multinomial_products_equal_lgamma_form(dtype):
    n_groups, n_events = 400, 37
    k, group = _groups(n_groups, dtype)
    event = torch.as_tensor(rng.integers(0, n_events, size=n_groups))
    logits = torch.tensor(rng.normal(0, 2, size=k.shape[0]), dtype=dtype, requires_grad=True)
    log_phi = torch.tensor(rng.uniform(-1, 7, size=n_events), dtype=dtype, requires_grad=True)
    results = []
    for form in ("products", "lgamma"):
        log_p = segment_log_softmax(logits, group, n_groups)
        if form == "products":
            ll = dirichlet_multinomial_log_prob(
                k, log_p, log_phi.exp(), group, n_groups, concentration_index=event
            )
        else:
            ll = _lgamma_form(k.double(), log_p.double(), log_phi.exp().double()[event], group, n_groups)
        ll.sum().backward()
        results.append((ll.detach().double(), logits.grad.double(), log_phi.grad.double()))
        logits.grad, log_phi.grad = None, None
    (a, ga, pa), (b, gb, pb) = results
    tol = {"rtol": 1e-10, "atol": 1e-9} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 2e-3}
    torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(ga, gb, **tol)
    torch.testing.assert_close(pa, pb, rtol=tol["rtol"], atol=tol["atol"] * 10)
    # And the definition is scipy's.
    g = 2
    sel = (group == g).numpy()
    p = torch.softmax(logits.detach().double()[sel], 0).numpy()
    phi = float(log_phi.detach().double().exp()[event[g]])
    want = stats.dirichlet_multinomial.logpmf(k.double()[sel].numpy(), p * phi, int(k[sel].sum()))
    assert float(a[g]) == pytest.approx(want, rel=1e-5)


def test_dirichlet_multinomial_products_skip_lgamma(monkeypatch):
    """Whole counts up to the largest multiplied-out one call no lgamma on entries or groups."""
    n_groups = 50
    k, group = _groups(n_groups, torch.float32)
    k = k.clamp_max(3)  # groups of at most 5 junctions: n ≤ 15 reads too
    assert float(torch.zeros(n_groups).index_add_(0, group, k).max()) <= RISING_TERMS_MAX
    log_p = segment_log_softmax(torch.randn(k.shape[0]), group, n_groups)
    phi = torch.rand(n_groups) * 30 + 0.5
    want = dirichlet_multinomial_log_prob(
        k, log_p, phi, group, n_groups, log_factorials=torch.zeros(n_groups)
    )
    sizes = []
    real = torch.lgamma
    monkeypatch.setattr(torch, "lgamma", lambda x: sizes.append(x.numel()) or real(x))
    got = dirichlet_multinomial_log_prob(k, log_p, phi, group, n_groups, log_factorials=torch.zeros(n_groups))
    assert sizes == []
    torch.testing.assert_close(got, want)
    # Counts that are not whole numbers take the lgamma form.
    dirichlet_multinomial_log_prob(k + 0.5, log_p, phi, group, n_groups, log_factorials=torch.zeros(n_groups))
    assert sizes


def test_segment_log_softmax_common_shift_equals_per_group_maximum():
    """One shift for all groups, and the per-group maximum where a group lies far below the others."""
    group = torch.as_tensor(np.repeat(np.arange(300), rng.integers(1, 5, size=300)))
    logits = torch.as_tensor(rng.normal(0, 3, size=group.shape[0]))
    for offset in (0.0, -200.0):  # the second puts group 7 ~200 below the rest: underflow without care
        x = logits.clone()
        x[group == 7] += offset
        x = x.float().requires_grad_()
        got = segment_log_softmax(x, group, 300)
        got[::3].sum().backward()
        x64 = x.detach().double().requires_grad_()
        want = torch.cat([torch.log_softmax(x64[group == g], 0) for g in range(300)])
        want[::3].sum().backward()
        torch.testing.assert_close(got.double(), want.detach(), rtol=1e-6, atol=2e-6)
        torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-6, atol=2e-6)
