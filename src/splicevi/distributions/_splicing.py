"""Splicing likelihoods evaluated on observed (cell, junction) entries only.

Every function takes flat tensors over the *observed* entries of a minibatch (one element per
observed (cell, junction) pair, i.e. an entry whose ATSE has coverage n > 0) and returns
log-probabilities per entry or per observed (cell, ATSE) group. Unobserved entries are simply not
in the input, so they contribute exactly zero and the cost scales with the number of observed
entries, never with cells × junctions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import _compiled as compiled


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
    if logits.numel() == 0:
        return logits.clone()
    # Shift by one number for all groups instead of each group's maximum (a scatter-max over the
    # entries and a gather back): softmax does not depend on the shift, and the sum of a group's
    # exp stays in float's normal range unless its logits lie ~80 below the overall maximum, which
    # the check below catches (then the per-group maximum, as before).
    shift = logits.detach().max()
    shifted = logits - shift
    denom = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(
        0, group, shifted.exp()
    )
    # sqrt of the smallest normal float (float32: 1e-19): the group's largest term is far from the
    # subnormal range and keeps full relative precision.
    if bool((denom < torch.finfo(logits.dtype).tiny ** 0.5).any()):
        group_max = torch.full((n_groups,), float("-inf"), dtype=logits.dtype, device=logits.device)
        group_max = group_max.scatter_reduce(0, group, logits.detach(), reduce="amax", include_self=True)
        shifted = logits - group_max.index_select(0, group)
        denom = torch.zeros(n_groups, dtype=logits.dtype, device=logits.device).index_add_(
            0, group, shifted.exp()
        )
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


#: Most factors :func:`log_rising_factorial` multiplies out per element; larger counts use ``lgamma``.
RISING_TERMS_MAX = 16
#: Factors multiplied before one ``log``: ``(x + 16)**4`` stays finite in float32 for ``x`` below
#: :data:`RISING_X_MAX` (float32 overflows at 3.4e38).
_FACTORS_PER_LOG = 4
#: Largest ``x`` (a concentration) the product form accepts; above it everything goes through ``lgamma``.
RISING_X_MAX = 1e8


@dataclass(frozen=True)
class CountOrder:
    """Elements ordered by a whole-number count, largest first (a data constant of a minibatch).

    Attributes
    ----------
    order
        Positions of the elements, by count descending (ties in their original order).
    above
        ``above[i]``: number of elements with count ``> i``, for ``i = 0 .. RISING_TERMS_MAX + 1``.
        The elements with count ``> i`` are therefore ``order[:above[i]]``.
    """

    order: torch.Tensor
    above: tuple[int, ...]


def count_order(
    counts: torch.Tensor, positions: torch.Tensor | None = None, whole: bool = False
) -> CountOrder | None:
    """:class:`CountOrder` of ``counts`` (``None`` when they are not whole numbers ``≥ 0``).

    ``positions`` (optional, one per count) are what ``order`` lists instead of ``0 .. len - 1``
    (e.g. the positions of the entries with reads among all entries). ``whole=True``: the caller
    knows the counts are whole numbers ``≥ 0`` (e.g. sums of such counts); they are not checked.
    """
    cap = RISING_TERMS_MAX + 2
    if (
        counts.numel()
        and not whole
        and (bool((counts < 0).any()) or not bool((counts == torch.floor(counts)).all()))
    ):
        return None
    counted = compiled.counting_order(counts, cap) if compiled.available(counts) else None
    if counted is not None:
        # One counting-sort pass on CPU: the same order as the stable sort below.
        order, per_key = counted
    else:
        # A stable sort of small unsigned keys (cap - count) is several times faster than sorting
        # the float counts, and puts the largest counts first.
        keys = (cap - counts.clamp(0, cap)).to(torch.uint8)
        order = torch.sort(keys, stable=True).indices
        per_key = torch.bincount(keys, minlength=cap + 1)
    # above[i] = #(count > i) = #(key <= cap - 1 - i).
    cumulative = torch.cumsum(per_key, 0).tolist()
    above = tuple(int(cumulative[cap - 1 - i]) for i in range(cap))
    return CountOrder(order if positions is None else positions.index_select(0, order), above)


class _LogRisingSorted(torch.autograd.Function):
    """``lgamma(x + k) - lgamma(x)`` for ``x`` and whole ``k`` ordered by ``k`` descending.

    ``above[i]`` is the number of elements with ``k > i`` (``i = 0 .. RISING_TERMS_MAX``). The value
    is ``log Π_{i<k} (x + i)``: up to :data:`_FACTORS_PER_LOG` factors are multiplied before each
    ``log``, and since the elements with ``k > i`` are a prefix, factor ``i`` touches only them. Its
    derivative is ``Σ_{i<k} 1 / (x + i)``. Elements with ``k > RISING_TERMS_MAX`` (the first
    ``above[-1]``) use ``lgamma`` and ``digamma``. About ten times cheaper than the two ``lgamma``
    (and, backward, two ``digamma``) it replaces at the counts of single cells; equal to them up to
    float rounding (tests/distributions/test_likelihoods.py).
    """

    @staticmethod
    def forward(ctx, x, k, above):
        ctx.above = above
        ctx.save_for_backward(x, k)
        out = torch.zeros_like(x)
        big = above[RISING_TERMS_MAX]
        if big:
            out[:big] = torch.lgamma(x[:big] + k[:big]) - torch.lgamma(x[:big])
        for start in range(0, RISING_TERMS_MAX, _FACTORS_PER_LOG):
            end = above[start]
            if end <= big:
                break
            product = x[big:end] + start
            for i in range(start + 1, min(start + _FACTORS_PER_LOG, RISING_TERMS_MAX)):
                stop = above[i]
                if stop <= big:
                    break
                product[: stop - big].mul_(x[big:stop] + i)
            out[big:end] += product.log_()
        return out

    @staticmethod
    def backward(ctx, grad):
        x, k = ctx.saved_tensors
        above = ctx.above
        dx = torch.zeros_like(x)
        big = above[RISING_TERMS_MAX]
        if big:
            dx[:big] = torch.digamma(x[:big] + k[:big]) - torch.digamma(x[:big])
        for i in range(RISING_TERMS_MAX):
            stop = above[i]
            if stop <= big:
                break
            dx[big:stop] += (x[big:stop] + i).reciprocal_()
        return grad * dx, None, None


def log_rising_factorial(
    x: torch.Tensor, k: torch.Tensor, above: tuple[int, ...] | None = None
) -> torch.Tensor:
    """``lgamma(x + k) - lgamma(x)`` (the log of ``x (x+1) ... (x+k-1)``) for ``x > 0``, whole ``k ≥ 0``.

    With ``above`` (``above[i]`` = number of elements with ``k > i``, ``i = 0 .. RISING_TERMS_MAX``)
    the elements must come ordered by ``k`` descending, and the value is a product of factors
    (:class:`_LogRisingSorted`); without it, two ``lgamma``.
    """
    if above is None or x.numel() == 0 or float(x.detach().max()) >= RISING_X_MAX:
        return torch.lgamma(x + k) - torch.lgamma(x)
    return _LogRisingSorted.apply(x, k, tuple(above[: RISING_TERMS_MAX + 1]))


def dirichlet_multinomial_log_prob(
    k: torch.Tensor,
    log_p: torch.Tensor,
    concentration: torch.Tensor,
    group: torch.Tensor,
    n_groups: int,
    concentration_index: torch.Tensor | None = None,
    group_totals: torch.Tensor | None = None,
    nonzero: torch.Tensor | CountOrder | None = None,
    log_factorials: torch.Tensor | None = None,
    totals_order: CountOrder | None = None,
) -> torch.Tensor:
    """Dirichlet-multinomial log-pmf per observed (cell, ATSE) group.

    The junction probabilities ``p`` of an ATSE sum to one (softmax of decoder logits within the
    ATSE); the Dirichlet parameters are ``α_j = p_j·φ``, so ``Σ_j α_j = φ`` whether or not every
    junction of the ATSE is listed (a junction with k = 0 contributes nothing to the sum over j).

    The gamma-function ratios of whole-number counts are rising factorials,
    ``lgamma(α + k) - lgamma(α) = log α + log (α+1) ... (α+k-1)``: the first factor is
    ``log p + log φ`` (no ``exp``/``log`` round trip, the whole term for a single read) and the rest
    are multiplied out (:func:`log_rising_factorial`) with the entries ordered by count; likewise
    ``lgamma(φ) - lgamma(n + φ)`` per group. The values equal the ``lgamma`` form up to float
    rounding; counts that are not whole numbers, or concentrations of :data:`RISING_X_MAX` and more,
    take the ``lgamma`` form.

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
    group_totals, nonzero, log_factorials, totals_order
        Data constants of the minibatch, when the caller has them (same values as computed here):
        ``n`` per group; the positions of the entries with ``k > 0`` (any order), or their
        :class:`CountOrder` by ``k``; ``lgamma(n + 1) - Σ_j lgamma(k_j + 1)`` per group; the
        :class:`CountOrder` of the groups by ``n``.

    Returns
    -------
    torch.Tensor
        Log-probability per group, equal to ``scipy.stats.dirichlet_multinomial.logpmf``.
    """
    eps = torch.finfo(log_p.dtype).tiny
    if concentration_index is None:
        phi = concentration
    else:
        phi = concentration.index_select(0, concentration_index)
    zeros = torch.zeros(n_groups, dtype=k.dtype, device=k.device)
    n = zeros.index_add(0, group, k) if group_totals is None else group_totals
    # An entry with k = 0 contributes lgamma(α) - lgamma(α) - lgamma(1) = 0 exactly: evaluate the
    # per-entry terms only where there are reads (most entries of an observed ATSE have none).
    reads = nonzero if isinstance(nonzero, CountOrder) else None
    if reads is None:
        positions = (k > 0).nonzero().view(-1) if nonzero is None else nonzero
        if positions.numel() and float(concentration.detach().max()) < RISING_X_MAX:
            reads = count_order(k.index_select(0, positions), positions)
    if reads is not None:
        positions = reads.order
    k_nz, group_nz = k.index_select(0, positions), group.index_select(0, positions)
    if log_factorials is None:
        # The multinomial coefficient: data only, no gradient.
        log_factorials = log_factorial(n) - zeros.index_add(0, group_nz, log_factorial(k_nz))
    if reads is None:
        # Counts that are not whole numbers (or huge concentrations): the lgamma form.
        if concentration_index is None:
            lgamma_phi = torch.lgamma(phi)
        else:
            lgamma_phi = torch.lgamma(concentration).index_select(0, concentration_index)
        alpha = (log_p.index_select(0, positions).exp() * phi.index_select(0, group_nz)).clamp_min(eps)
        per_entry = torch.lgamma(k_nz + alpha) - torch.lgamma(alpha)
        return lgamma_phi - torch.lgamma(n + phi) + log_factorials + zeros.index_add(0, group_nz, per_entry)
    log_phi = (
        phi.log() if concentration_index is None else concentration.log().index_select(0, concentration_index)
    )
    log_alpha = log_p.index_select(0, positions) + log_phi.index_select(0, group_nz)
    # Entries with k ≥ 2 come first: log α + log (α+1)...(α+k-1); a single read is log α alone.
    several = reads.above[1]
    rising = log_rising_factorial(log_alpha[:several].exp() + 1.0, k_nz[:several] - 1.0, reads.above[1:])
    per_entry = torch.cat([log_alpha[:several] + rising, log_alpha[several:]])
    ll = log_factorials + zeros.index_add(0, group_nz, per_entry)
    totals = count_order(n) if totals_order is None else totals_order
    if totals is None:
        return ll + torch.lgamma(phi) - torch.lgamma(n + phi)
    # lgamma(φ) - lgamma(n + φ) = -log φ(φ+1)...(φ+n-1), by groups ordered by n.
    ratio = log_rising_factorial(
        phi.index_select(0, totals.order), n.index_select(0, totals.order), totals.above
    )
    return ll.index_add(0, totals.order, -ratio)
