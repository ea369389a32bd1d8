"""The observed entries of a CSR minibatch in one compiled pass (CPU).

See :mod:`splicevi.distributions._compiled` for why compiled loops.

Building them from tensor operations (:func:`splicevi.nn._observed.observed_entries`) takes a dozen
whole-array passes: expanding the CSR rows, unique (cell, ATSE) keys, repeat-interleave, gathers and
a scatter. Here one loop counts the groups and one fills the same arrays in the same order
(``tests/nn/test_compiled_entries.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..distributions._compiled import guarded, jit


@jit
def _count_groups(crow, col, val, junc2atse, atse_ptr, offset):
    """Observed (cell, ATSE) groups and entries of a CSR minibatch.

    ``(-1, -1)`` when a row's stored junctions are not grouped by ATSE in increasing order (then
    the tensor form sorts them).
    """
    n_groups = 0
    n_entries = 0
    for r in range(crow.shape[0] - 1):
        last = -1
        for p in range(crow[r], crow[r + 1]):
            c = col[p] - offset
            if c < 0 or val[p] <= 0:
                continue
            e = junc2atse[c]
            if e < last:
                return -1, -1
            if e != last:
                last = e
                n_groups += 1
                n_entries += atse_ptr[e + 1] - atse_ptr[e]
    return n_groups, n_entries


@jit
def _fill_entries(crow, col, val, junc2atse, atse_ptr, atse_junctions, slot, offset, n_groups, n_entries):
    rows = np.empty(n_entries, np.int64)
    cols = np.empty(n_entries, np.int64)
    k = np.zeros(n_entries, np.float32)
    group = np.empty(n_entries, np.int64)
    group_row = np.empty(n_groups, np.int64)
    group_event = np.empty(n_groups, np.int64)
    totals = np.zeros(n_groups, np.float32)
    sizes = np.empty(n_groups, np.int64)
    nonzero = np.empty(col.shape[0], np.int64)
    g = -1
    pos = 0
    start = 0
    nz = 0
    ascending = True
    for r in range(crow.shape[0] - 1):
        last = -1
        for p in range(crow[r], crow[r + 1]):
            c = col[p] - offset
            if c < 0 or val[p] <= 0:
                continue
            e = junc2atse[c]
            if e != last:
                # A new observed ATSE: all its junctions become entries (zero counts are data).
                last = e
                g += 1
                first = atse_ptr[e]
                size = atse_ptr[e + 1] - first
                start = pos
                for j in range(size):
                    rows[pos + j] = r
                    cols[pos + j] = atse_junctions[first + j]
                    group[pos + j] = g
                group_row[g] = r
                group_event[g] = e
                sizes[g] = size
                pos += size
            dest = start + slot[c]
            k[dest] = val[p]
            totals[g] += val[p]
            if nz > 0 and dest <= nonzero[nz - 1]:
                ascending = False
            nonzero[nz] = dest
            nz += 1
    nonzero = nonzero[:nz]
    if not ascending:
        nonzero = np.sort(nonzero)
    return rows, cols, k, group, group_row, group_event, totals, sizes, nonzero


@guarded
def csr_entries(crow, col, val, junc2atse, atse_ptr, atse_junctions, slot, offset: int):
    """The observed entries of a CSR minibatch (``None``: junctions not grouped by ATSE, or no numba).

    Returns the tensors ``rows, cols, k, group, group_row, group_event, totals, sizes, nonzero`` of
    :func:`splicevi.nn._observed.observed_entries` (counts only, no stored ATSE totals).
    """
    arrays = [t.numpy() for t in (crow, col)]
    val = val.float().numpy()
    tables = [t.numpy() for t in (junc2atse, atse_ptr, atse_junctions, slot)]
    n_groups, n_entries = _count_groups(arrays[0], arrays[1], val, tables[0], tables[1], offset)
    if n_groups < 0:
        return None
    out = _fill_entries(*arrays, val, *tables, offset, n_groups, n_entries)
    return tuple(torch.from_numpy(a) for a in out)


@jit
def _by_column(rows, cols, n_cols):
    counts = np.zeros(n_cols + 1, np.int64)
    for c in cols:
        counts[c + 1] += 1
    for c in range(n_cols):
        counts[c + 1] += counts[c]
    nxt = counts[:-1].copy()
    order = np.empty(cols.shape[0], np.int64)
    t_rows = np.empty(cols.shape[0], np.int64)
    for e in range(cols.shape[0]):
        c = cols[e]
        order[nxt[c]] = e
        t_rows[nxt[c]] = rows[e]
        nxt[c] += 1
    return order, counts, t_rows


@guarded
def transposed_layout(rows: torch.Tensor, cols: torch.Tensor, n_cols: int):
    """``(order, t_crow, t_cols)`` of :meth:`splicevi.nn._entry_ops.EntryLayout.transposed`.

    A counting sort of the entries by column (stable, so the order of ``torch.argsort(cols,
    stable=True)``), the column pointers and the rows in that order, in one pass. ``None`` when
    numba cannot compile it (:func:`~splicevi.distributions._compiled.guarded`).
    """
    out = _by_column(rows.numpy(), cols.numpy(), int(n_cols))
    return tuple(torch.from_numpy(a) for a in out)
