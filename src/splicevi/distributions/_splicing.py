"""Splicing likelihoods evaluated on observed (cell, junction) entries only.

Every function takes flat tensors over the *observed* entries of a minibatch (one element per
observed (cell, junction) pair, i.e. an entry whose ATSE has coverage n > 0) and returns
log-probabilities per entry or per observed (cell, ATSE) group. Unobserved entries are simply not
in the input, so they contribute exactly zero and the cost scales with the number of observed
entries, never with cells × junctions.
"""

from __future__ import annotations

import torch


def _log_binom_coef(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """log C(n, k) for real-valued n ≥ k ≥ 0 (whole numbers from a table, see :func:`log_factorial`)."""
    return log_factorial(n) - log_factorial(k) - log_factorial(n - k)


def binomial_log_prob(k: torch.Tensor, n: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Binomial log-pmf of ``k`` successes out of ``n`` with success logit ``logits`` (per entry).

    :class:`torch.distributions.Binomial` on the logits (finite for PSI = 0 or 1 and any logit).
    ``validate_args=False``: ``n`` is a float tensor of read totals, which the validator would reject
    as a non-integer support even when its values are whole numbers.
    """
    return torch.distributions.Binomial(total_count=n, logits=logits, validate_args=False).log_prob(k)


def beta_binomial_log_prob(
    k: torch.Tensor, n: torch.Tensor, logits: torch.Tensor, concentration: torch.Tensor
) -> torch.Tensor:
    """Beta-binomial log-pmf with mean ``σ(logits)`` and concentration ``a + b`` (per entry).

    ``a = p·φ``, ``b = (1−p)·φ``; equals ``scipy.stats.betabinom.logpmf(k, n, a, b)``.
    """
    p = torch.sigmoid(logits)
    eps = torch.finfo(p.dtype).tiny
    a = (p * concentration).clamp_min(eps)
    b = ((1.0 - p) * concentration).clamp_min(eps)
    return (
        _log_binom_coef(n, k)
        + torch.lgamma(k + a)
        + torch.lgamma(n - k + b)
        - torch.lgamma(n + a + b)
        - torch.lgamma(a)
        - torch.lgamma(b)
        + torch.lgamma(a + b)
    )


def segment_log_softmax(logits: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Log-softmax of ``logits`` within each group (groups given by an index per element).

    Parameters
    ----------
    logits
        Flat tensor of logits.
    group
        Group index of each element in ``[0, n_groups)``.
    n_groups
        Number of groups.
    """
    group_max = torch.full((n_groups,), float("-inf"), dtype=logits.dtype, device=logits.device)
    group_max = group_max.scatter_reduce(0, group, logits.detach(), reduce="amax", include_self=True)
    shifted = logits - group_max.index_select(0, group)
    denom = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(0, group, shifted.exp())
    return shifted - denom.log().index_select(0, group)


#: Largest whole number :func:`log_factorial` reads from a table (beyond it: ``lgamma``).
LOG_FACTORIAL_TABLE_MAX = 1 << 20
_log_factorial_tables: dict = {}


def log_factorial(x: torch.Tensor) -> torch.Tensor:
    """``lgamma(x + 1)``, read from a table when every ``x`` is a whole number in ``[0, 2**20)``.

    Read counts are whole numbers, and ``lgamma`` costs about five times a table lookup on CPU.
    The table holds ``torch.lgamma(i + 1.0)`` in ``x``'s dtype, so the result is bit for bit the one
    ``lgamma`` gives. Any other input falls back to ``lgamma``.
    """
    if x.numel() == 0 or x.requires_grad:
        return torch.lgamma(x + 1.0)
    low, high = torch.aminmax(x)
    if float(low) < 0 or float(high) >= LOG_FACTORIAL_TABLE_MAX or not bool((x == torch.floor(x)).all()):
        return torch.lgamma(x + 1.0)
    key = (x.device, x.dtype)
    table = _log_factorial_tables.get(key)
    size = int(high) + 1
    if table is None or table.shape[0] < size:
        size = max(size, 2 * (table.shape[0] if table is not None else 512))
        table = torch.lgamma(torch.arange(size, device=x.device, dtype=x.dtype) + 1.0)
        _log_factorial_tables[key] = table
    return table.index_select(0, x.long())


def dirichlet_multinomial_log_prob(
    k: torch.Tensor,
    log_p: torch.Tensor,
    concentration: torch.Tensor,
    group: torch.Tensor,
    n_groups: int,
    concentration_index: torch.Tensor | None = None,
    group_totals: torch.Tensor | None = None,
    nonzero: torch.Tensor | None = None,
    log_factorials: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dirichlet-multinomial log-pmf per observed (cell, ATSE) group.

    The junction probabilities ``p`` of an ATSE sum to one (softmax of decoder logits within the
    ATSE); the Dirichlet parameters are ``α_j = p_j·φ``, so ``Σ_j α_j = φ`` whether or not every
    junction of the ATSE is listed (a junction with k = 0 contributes nothing to the sum over j).

    Parameters
    ----------
    k
        Junction counts of the observed entries.
    log_p
        Log junction probabilities of the entries (log-softmax within each ATSE).
    concentration
        φ of each (cell, ATSE) group, shape ``(n_groups,)``; or, with ``concentration_index``, a
        table (e.g. one φ per ATSE) indexed by it.
    group
        Index of the entry's (cell, ATSE) group in ``[0, n_groups)``.
    n_groups
        Number of observed (cell, ATSE) groups.
    concentration_index
        Row of ``concentration`` for each group (e.g. its ATSE). ``lgamma(φ)`` is then evaluated
        once per table entry instead of once per group (same value, fewer special functions).
    group_totals, nonzero, log_factorials
        Data constants of the minibatch, when the caller has them (same values as computed here):
        ``n`` per group, the positions of the entries with ``k > 0`` (ascending), and
        ``lgamma(n + 1) - Σ_j lgamma(k_j + 1)`` per group.

    Returns
    -------
    torch.Tensor
        Log-probability per group, equal to ``scipy.stats.dirichlet_multinomial.logpmf``.
    """
    eps = torch.finfo(log_p.dtype).tiny
    if concentration_index is None:
        phi, lgamma_phi = concentration, torch.lgamma(concentration)
    else:
        phi = concentration.index_select(0, concentration_index)
        lgamma_phi = torch.lgamma(concentration).index_select(0, concentration_index)
    zeros = torch.zeros(n_groups, dtype=k.dtype, device=k.device)
    n = zeros.index_add(0, group, k) if group_totals is None else group_totals
    # An entry with k = 0 contributes lgamma(α) - lgamma(α) - lgamma(1) = 0 exactly: evaluate the
    # per-entry terms only where there are reads (most entries of an observed ATSE have none).
    if nonzero is None:
        nonzero = (k > 0).nonzero().view(-1)
    k_nz, group_nz = k.index_select(0, nonzero), group.index_select(0, nonzero)
    alpha = (log_p.index_select(0, nonzero).exp() * phi.index_select(0, group_nz)).clamp_min(eps)
    if log_factorials is None:
        # The multinomial coefficient: data only, no gradient.
        log_factorials = log_factorial(n) - zeros.index_add(0, group_nz, log_factorial(k_nz))
    per_entry = torch.lgamma(k_nz + alpha) - torch.lgamma(alpha)
    summed = zeros.index_add(0, group_nz, per_entry)
    return lgamma_phi - torch.lgamma(n + phi) + log_factorials + summed
