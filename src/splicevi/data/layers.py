"""Splicing layers of the data contract, derived from junction counts and the junction → ATSE map.

Only the junction counts ``k`` carry information: the ATSE totals ``n`` are a scatter-add of ``k``
over the junctions of each ATSE, the mask is ``n > 0`` and PSI is ``k / n``. Everything here stays
sparse (CSR) and is vectorised; nothing is ever densified whole.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import EVENT_ID_COLUMN

#: Layer names of the data contract (the reference implementation's names).
JUNCTION_COUNTS = "cell_by_junction_matrix"
ATSE_COUNTS = "cell_by_cluster_matrix"
JUNCTION_RATIO = "junc_ratio"
PSI_MASK = "psi_mask"
SPLICING_LAYERS = (JUNCTION_COUNTS, ATSE_COUNTS, JUNCTION_RATIO, PSI_MASK)


def event_codes(event_ids: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer code of each junction's ATSE.

    Parameters
    ----------
    event_ids
        One event id per junction (strings or integers). Missing ids are not allowed.

    Returns
    -------
    codes
        ``int64`` array, one code per junction, in ``[0, n_events)``.
    categories
        The event id of each code.
    """
    values = pd.Series(np.asarray(event_ids))
    if values.isna().any():
        raise ValueError(
            f"{int(values.isna().sum())} junction(s) have no event id; every junction must belong to an "
            "ATSE (run `splicevi atse` or drop those junctions)."
        )
    codes, categories = pd.factorize(values, sort=False)
    return codes.astype(np.int64), np.asarray(categories)


def junction_to_event_matrix(codes: np.ndarray, n_events: int | None = None) -> sp.csr_matrix:
    """Sparse 0/1 matrix (junctions × events) with a one in each junction's event column."""
    codes = np.asarray(codes, dtype=np.int64)
    n_events = int(codes.max()) + 1 if n_events is None else int(n_events)
    data = np.ones(codes.shape[0], dtype=np.float32)
    return sp.csr_matrix((data, (np.arange(codes.shape[0]), codes)), shape=(codes.shape[0], n_events))


def atse_totals(junction_counts: sp.spmatrix, codes: np.ndarray) -> sp.csr_matrix:
    """ATSE totals ``n`` stored on every junction of each observed ATSE (cells × junctions, CSR).

    ``n[c, j] = sum_{j' in event(j)} k[c, j']``. Computed as ``(K @ M) @ M.T`` with ``M`` the
    junction → event indicator, so the cost is linear in the observed entries.
    """
    k = sp.csr_matrix(junction_counts, dtype=np.float32)
    m = junction_to_event_matrix(codes)
    per_event = (k @ m).tocsr()
    per_event.eliminate_zeros()
    n = (per_event @ m.T.tocsr()).tocsr()
    n.sort_indices()
    return n


def observed_atses(junction_counts: sp.spmatrix, codes: np.ndarray) -> sp.csr_matrix:
    """Cells × events 0/1 matrix (CSR): 1 where the cell has at least one read in the ATSE (n > 0)."""
    per_event = (sp.csr_matrix(junction_counts) @ junction_to_event_matrix(codes)).tocsr()
    per_event.eliminate_zeros()
    per_event.data = np.ones_like(per_event.data)
    return per_event


def splicing_layers(junction_counts: sp.spmatrix, codes: np.ndarray) -> dict[str, sp.csr_matrix]:
    """All four splicing layers of the data contract from junction counts.

    Parameters
    ----------
    junction_counts
        Cells × junctions read counts ``k`` (any sparse format, non-negative).
    codes
        ATSE code per junction (see :func:`event_codes`).

    Returns
    -------
    dict
        ``cell_by_junction_matrix`` (k), ``cell_by_cluster_matrix`` (n), ``junc_ratio`` (k / n on
        observed entries, explicit zeros kept so observed PSI = 0 stays visible), ``psi_mask`` (1 where
        n > 0). All CSR with the same sparsity pattern (that of ``n``).
    """
    n = atse_totals(junction_counts, codes)
    k = sp.csr_matrix(junction_counts, dtype=np.float32)
    # Align k onto the pattern of n: every stored k is inside an observed ATSE, but k may lack
    # entries (zero reads for a junction of an observed event), which must become explicit zeros.
    pattern = n.copy()
    pattern.data = np.ones_like(pattern.data)
    k_on_n = pattern.multiply(k).tocsr()  # same or smaller pattern
    k_aligned = _on_pattern(k_on_n, n)
    ratio = n.copy()
    ratio.data = (k_aligned.data / n.data).astype(np.float32)
    mask = n.copy()
    mask.data = np.ones_like(n.data, dtype=np.float32)
    return {
        JUNCTION_COUNTS: k_aligned,
        ATSE_COUNTS: n.astype(np.float32),
        JUNCTION_RATIO: ratio,
        PSI_MASK: mask,
    }


def _on_pattern(values: sp.csr_matrix, pattern: sp.csr_matrix) -> sp.csr_matrix:
    """Values of ``values`` laid out on the (superset) sparsity pattern of ``pattern``, zeros kept."""
    values = values.tocoo()
    pattern = pattern.tocsr()
    pattern.sort_indices()
    out = pattern.copy()
    out.data = np.zeros_like(pattern.data, dtype=np.float32)
    if values.nnz:
        # Position of each (row, col) of `values` in pattern's data array.
        keys = values.row.astype(np.int64) * pattern.shape[1] + values.col
        pat_rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        pat_keys = pat_rows.astype(np.int64) * pattern.shape[1] + pattern.indices
        pos = np.searchsorted(pat_keys, keys)
        if np.any(pos >= pat_keys.shape[0]) or np.any(pat_keys[np.minimum(pos, len(pat_keys) - 1)] != keys):
            raise ValueError("junction counts have entries outside the observed ATSEs")
        out.data[pos] = values.data.astype(np.float32)
    return out


#: Stored junction counts per block when a derived layer is computed block by block over cells:
#: :func:`splicing_layers` needs about ten times its input in transient memory, so blocks keep that
#: to a few hundred MB whatever the size of the matrix.
BLOCK_ENTRIES = 250_000


def _row_blocks(k: sp.csr_matrix, max_entries: int = BLOCK_ENTRIES):
    """Row slices of ``k`` holding about ``max_entries`` stored entries each."""
    n_rows = k.shape[0]
    step = max(1, int(max_entries * n_rows / max(k.nnz, 1)))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def junction_mean_psi(junction_counts: sp.spmatrix, codes: np.ndarray, prior: float = 0.5) -> np.ndarray:
    """Mean PSI of each junction over the cells that observe its ATSE.

    This is the centre the splicing encoder and the SVD baseline subtract from PSI: an observed PSI
    far from its junction's usual value is information about the cell, the usual value itself is not.
    Computed block by block over cells, so memory stays at one block's layers.

    Parameters
    ----------
    junction_counts
        Cells × junctions read counts ``k``.
    codes
        ATSE code per junction (see :func:`event_codes`).
    prior
        Value for junctions that no cell observes.

    Returns
    -------
    np.ndarray
        ``float32``, one value per junction.
    """
    k = sp.csr_matrix(junction_counts)
    n_junctions = k.shape[1]
    count = np.zeros(n_junctions, dtype=np.int64)
    total = np.zeros(n_junctions, dtype=np.float64)
    for rows in _row_blocks(k):
        psi = splicing_layers(k[rows], codes)[JUNCTION_RATIO]
        count += np.bincount(psi.indices, minlength=n_junctions)
        total += np.bincount(psi.indices, weights=psi.data, minlength=n_junctions)
    return np.where(count > 0, total / np.maximum(count, 1), prior).astype(np.float32)


def centred_psi(
    junction_counts: sp.spmatrix,
    codes: np.ndarray,
    center: np.ndarray | None = None,
    prior_strength: float = 0.0,
) -> sp.csr_matrix:
    """PSI minus the junction's mean PSI on the observed entries (cells × junctions CSR).

    Unobserved entries stay absent (0 after centring: "no evidence either way"), so a truncated SVD
    of this matrix (``prior_strength=0``) is the linear baseline every splicing latent is judged
    against. With ``prior_strength = κ > 0`` each entry is the posterior mean of PSI under a Beta
    prior of ``κ`` pseudo-reads centred on the junction's centre, minus that centre:
    ``(k - n·c) / (n + κ) = (psi - c)·n / (n + κ)``, so an entry from one or two reads counts less
    than one from fifty. Built block by block over cells into preallocated arrays: the only large
    allocation is the result itself.

    Parameters
    ----------
    junction_counts
        Cells × junctions read counts ``k``.
    codes
        ATSE code per junction.
    center
        Per-junction centre; :func:`junction_mean_psi` when ``None``.
    prior_strength
        Pseudo-reads ``κ`` of the shrinkage towards the centre (0: plain centred PSI).
    """
    k = sp.csr_matrix(junction_counts)
    if center is None:
        center = junction_mean_psi(k, codes)
    center = np.asarray(center, dtype=np.float32)
    # Observed entries per cell (the junctions of its ATSEs with reads), to size the result first.
    m = junction_to_event_matrix(codes)
    event_sizes = np.bincount(codes, minlength=m.shape[1]).astype(np.float64)
    per_cell = np.zeros(k.shape[0], dtype=np.int64)
    for rows in _row_blocks(k):
        per_event = (k[rows] @ m).tocsr()
        per_event.eliminate_zeros()
        per_event.data = event_sizes[per_event.indices]
        per_cell[rows] = np.asarray(per_event.sum(axis=1)).ravel().astype(np.int64)
    del per_event
    # One index dtype for indptr and indices (int32 while it fits): scipy would otherwise upcast
    # the indices to match an int64 indptr, a copy as large as the result.
    index_dtype = np.int32 if max(int(per_cell.sum()), k.shape[1]) < 2**31 else np.int64
    indptr = np.concatenate([[0], np.cumsum(per_cell)]).astype(index_dtype)
    data = np.empty(indptr[-1], dtype=np.float32)
    indices = np.empty(indptr[-1], dtype=index_dtype)
    for rows in _row_blocks(k):
        layers = splicing_layers(k[rows], codes)
        psi, totals = layers[JUNCTION_RATIO], layers[ATSE_COUNTS]
        lo, hi = indptr[rows.start], indptr[rows.stop]
        shrink = totals.data / (totals.data + prior_strength)
        data[lo:hi] = (psi.data - center[psi.indices]) * shrink
        indices[lo:hi] = psi.indices
    return sp.csr_matrix((data, indices, indptr), shape=k.shape, copy=False)


def layer_or_derived(adata, name: str, event_key: str = EVENT_ID_COLUMN) -> sp.csr_matrix:
    """A splicing layer of ``adata``, derived from the junction counts when the file lacks it.

    The lean layout (``splicevi assemble`` by default) stores only ``cell_by_junction_matrix`` (k)
    and ``var[event_key]``; n, PSI and the mask follow from them (:func:`splicing_layers`). Use this
    wherever a consumer needs n, PSI or the mask, so it works on both layouts.

    Parameters
    ----------
    adata
        Splicing AnnData (``mdata["splicing"]``).
    name
        One of :data:`SPLICING_LAYERS`.
    event_key
        ``var`` column with each junction's ATSE id.

    Returns
    -------
    scipy.sparse.csr_matrix
        The stored layer, or the derived one (cells × junctions CSR, observed zeros kept).
    """
    if name in adata.layers:
        return sp.csr_matrix(adata.layers[name])
    if name not in SPLICING_LAYERS:
        raise KeyError(
            f"layer {name!r} is not in the data and cannot be derived (derivable: {SPLICING_LAYERS})"
        )
    if JUNCTION_COUNTS not in adata.layers or event_key not in adata.var:
        raise KeyError(
            f"layer {name!r} is missing and cannot be derived: it needs layer {JUNCTION_COUNTS!r} and "
            f"var[{event_key!r}] (available layers: {sorted(adata.layers)}); re-run `splicevi assemble`"
        )
    codes, _ = event_codes(adata.var[event_key])
    return splicing_layers(adata.layers[JUNCTION_COUNTS], codes)[name]


def tie_x_to_counts(adata) -> bool:
    """Make ``X`` the same object as the junction-count layer when a file stored it as a copy of it.

    ``splicevi assemble`` stores ``X`` as a link to the count layer (one copy on disk), but readers
    load the two paths as two matrices; tying them frees one copy. Returns whether ``X`` was tied.
    """
    counts = adata.layers.get(JUNCTION_COUNTS) if hasattr(adata, "layers") else None
    x = adata.X
    if counts is None or x is None or x is counts or not (sp.issparse(x) and sp.issparse(counts)):
        return False
    if x.shape != counts.shape or x.nnz != counts.nnz or (x != counts).nnz:
        return False
    adata.X = counts
    return True


def derivable_layers(
    junction_counts: sp.spmatrix,
    codes: np.ndarray,
    atse_counts: sp.spmatrix | None = None,
    psi_mask: sp.spmatrix | None = None,
    offset: int = 0,
) -> dict[str, bool]:
    """Whether stored ATSE totals and mask say nothing beyond the junction counts.

    The model needs ``n`` and the mask only where they differ from what the counts give: ``n`` equal
    to the per-ATSE sum of ``k`` on every observed entry (and no observed entry elsewhere), and a
    mask that is 1 on every such entry. When both hold, a minibatch needs only ``k`` and the rest is
    derived on it (bit for bit the same observed entries, ``k`` and ``n``). Checked block by block
    over cells, so memory stays at one block's layers.

    Parameters
    ----------
    junction_counts
        Cells × columns junction counts ``k`` (junctions from column ``offset`` on).
    codes
        ATSE code per junction.
    atse_counts, psi_mask
        The stored layers (same shape as ``junction_counts``), or ``None`` when not registered.
    offset
        Leading non-junction columns (genes of a concatenated AnnData).

    Returns
    -------
    dict
        ``{"atse_counts": bool, "psi_mask": bool}``: True where the layer is absent or derivable.
    """
    same = {"atse_counts": True, "psi_mask": True}
    if atse_counts is None and psi_mask is None:
        return same
    k_all = sp.csr_matrix(junction_counts)
    n_all = None if atse_counts is None else sp.csr_matrix(atse_counts)
    m_all = None if psi_mask is None else sp.csr_matrix(psi_mask)
    for rows in _row_blocks(k_all):
        k = _junction_columns(k_all[rows], offset)
        derived = atse_totals(k, codes)
        derived.eliminate_zeros()
        if same["atse_counts"] and n_all is not None:
            given = _junction_columns(n_all[rows], offset).astype(np.float32)
            given.eliminate_zeros()
            given.sort_indices()
            same["atse_counts"] = bool(
                np.array_equal(given.indptr, derived.indptr)
                and np.array_equal(given.indices, derived.indices)
                and np.array_equal(given.data, derived.data)
            )
        if same["psi_mask"] and m_all is not None:
            mask = _junction_columns(m_all[rows], offset)
            mask.data = (mask.data > 0).astype(np.float32)
            covered = derived.copy()
            covered.data = np.ones_like(covered.data)
            same["psi_mask"] = bool(covered.multiply(mask).count_nonzero() == covered.nnz)
        if not any(same.values()):
            break
    return same


def _junction_columns(x: sp.csr_matrix, offset: int) -> sp.csr_matrix:
    """Junction columns of a row block (all columns when there is no offset)."""
    return x[:, offset:].tocsr() if offset else x
