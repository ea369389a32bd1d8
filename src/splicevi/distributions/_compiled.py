"""Compiled (numba) CPU loops shared by the likelihoods and the minibatch entries.

Several per-minibatch steps are a dozen whole-array tensor passes (gathers, scatters, a sort) whose
cost on CPU is the passes, not the arithmetic. Where one compiled loop gives exactly the arrays of
the tensor form, in the same order, it is used for CPU tensors; the tensor form stays the reference
and the path on GPUs (the tests check they agree). Compiled once per machine and cached
(``NUMBA_CACHE_DIR``).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import torch

try:  # numba comes with scanpy; without it the tensor forms are used
    import numba
    from numba.core.errors import NumbaError
except ImportError:  # pragma: no cover - numba is a dependency
    numba = None
    NumbaError = RuntimeError

#: Whether the compiled loops are used on CPU tensors (tests and benches turn it off to compare).
ENABLED = True


def jit(fn):
    """``numba.njit`` (cached, no GIL) when numba is present; the function itself otherwise."""
    return numba.njit(cache=True, nogil=True)(fn) if numba is not None else fn


def available(*tensors: torch.Tensor) -> bool:
    """Whether the compiled loops apply to these tensors (numba present, every tensor on CPU)."""
    return ENABLED and numba is not None and all(t.device.type == "cpu" for t in tensors)


def guarded(fn):
    """Run ``fn``; if numba cannot compile it here, warn once, turn the loops off, return ``None``.

    A numba that does not match this numpy or Python fails at the first compilation; training then
    goes on with the tensor forms (the same results, more slowly) instead of stopping.
    """

    @functools.wraps(fn)
    def run(*args, **kwargs):
        global ENABLED
        try:
            return fn(*args, **kwargs)
        except NumbaError as err:
            ENABLED = False
            warnings.warn(
                f"splicevi: numba could not compile {fn.__name__} ({type(err).__name__}); using the "
                "tensor forms (same results, slower on CPU)",
                RuntimeWarning,
                stacklevel=2,
            )
            return None

    return run


@jit
def _counting_order(counts, cap):
    """Stable order of ``counts`` by ``cap - min(count, cap)`` (largest first) and its histogram."""
    n = counts.shape[0]
    hist = np.zeros(cap + 1, np.int64)
    keys = np.empty(n, np.int64)
    for i in range(n):
        c = counts[i]
        key = cap - (cap if c >= cap else int(c))
        keys[i] = key
        hist[key] += 1
    nxt = np.empty(cap + 1, np.int64)
    running = 0
    for key in range(cap + 1):
        nxt[key] = running
        running += hist[key]
    order = np.empty(n, np.int64)
    for i in range(n):
        key = keys[i]
        order[nxt[key]] = i
        nxt[key] += 1
    return order, hist


@guarded
def counting_order(counts: torch.Tensor, cap: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Positions of whole counts ``≥ 0`` by count descending (ties in order), and counts per key.

    The key of a count is ``cap - min(count, cap)``; a counting sort (no comparisons) gives the
    order of the stable sort of the keys. ``None`` when numba cannot compile it (:func:`guarded`).
    """
    order, hist = _counting_order(counts.detach().float().numpy(), int(cap))
    return torch.from_numpy(order), torch.from_numpy(hist)
