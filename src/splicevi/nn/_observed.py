"""Observed (cell, junction) entries of a splicing minibatch, from sparse (or dense) tensors.

An entry is *observed* when its ATSE has coverage in the cell (n > 0), never because its junction
count or PSI is non-zero: an observed PSI of 0 is data. Everything here is index arithmetic on the
stored entries of the minibatch; nothing is densified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..distributions import CountOrder, count_order
from ..distributions._compiled import available
from ._compiled_entries import csr_entries
from ._entry_ops import EntryLayout


@dataclass
class ObservedEntries:
    """Flat view of the observed entries of a minibatch.

    Attributes
    ----------
    rows, cols
        Cell (row in the minibatch) and junction index of each observed entry.
    k
        Junction reads of each entry (0 allowed).
    n
        ATSE total reads of each entry (> 0).
    group
        Index of each entry's observed (cell, ATSE) pair, in ``[0, n_groups)``.
    group_row, group_event
        Cell and ATSE of each group.
    n_cells
        Number of cells in the minibatch.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    k: torch.Tensor
    n: torch.Tensor
    group: torch.Tensor
    group_row: torch.Tensor
    group_event: torch.Tensor
    n_cells: int
    n_junctions: int | None = None
    _layout: EntryLayout | None = field(default=None, repr=False)
    #: ``n`` of each group and the positions of the entries with ``k > 0``, when known on building.
    _group_n: torch.Tensor | None = field(default=None, repr=False)
    _nonzero: torch.Tensor | None = field(default=None, repr=False)
    #: Entries per group, when the entries were built group by group in cell order
    #: (:func:`observed_entries` without stored totals): the CSR row pointers then follow from the
    #: groups, without a pass over the entries.
    _group_sizes: torch.Tensor | None = field(default=None, repr=False)
    #: The entries with reads ordered by ``k`` and the groups ordered by ``n`` (``False``: counts
    #: that are not whole numbers), built on first use.
    _reads_order: CountOrder | bool | None = field(default=None, repr=False)
    _totals_order: CountOrder | bool | None = field(default=None, repr=False)

    def group_totals(self) -> torch.Tensor:
        """ATSE total ``n`` of each observed (cell, ATSE) group (the sum of its entries' ``k``)."""
        if self._group_n is None:
            self._group_n = torch.zeros(self.n_groups, dtype=self.k.dtype, device=self.k.device).index_add_(
                0, self.group, self.k
            )
        return self._group_n

    def nonzero(self) -> torch.Tensor:
        """Positions of the entries with ``k > 0``, ascending."""
        if self._nonzero is None:
            self._nonzero = (self.k > 0).nonzero().view(-1)
        return self._nonzero

    def reads_by_count(self) -> CountOrder | None:
        """The entries with ``k > 0`` ordered by ``k``, largest first (``None``: ``k`` not whole numbers).

        A data constant of the minibatch: the Dirichlet-multinomial evaluates its gamma-function
        ratios as products over these prefixes (:func:`splicevi.distributions._splicing.count_order`).
        """
        if self._reads_order is None:
            nonzero = self.nonzero()
            self._reads_order = count_order(self.k.index_select(0, nonzero), nonzero) or False
        return self._reads_order or None

    def groups_by_total(self) -> CountOrder | None:
        """The groups ordered by their total ``n``, largest first (``None``: not whole numbers)."""
        if self._totals_order is None:
            # Sums of whole counts are whole: no need to check them again.
            self._totals_order = (
                count_order(self.group_totals(), whole=self.reads_by_count() is not None) or False
            )
        return self._totals_order or None

    def layout(self) -> EntryLayout | None:
        """CSR structure of the entries for the sparse kernels (``None``: use gather/scatter).

        Built once per minibatch and shared by the encoder's pooling and the decoder's logits.
        ``None`` when the number of junctions is unknown or the entries are not in row order.
        """
        if self._layout is None and self._group_sizes is not None:
            per_row = torch.zeros(self.n_cells, dtype=self._group_sizes.dtype, device=self.rows.device)
            per_row.index_add_(0, self.group_row, self._group_sizes)
            crow = torch.cat([per_row.new_zeros(1), torch.cumsum(per_row, 0)])
            self._layout = EntryLayout(self.rows, self.cols, self.n_cells, self.n_junctions, crow=crow)
        elif self._layout is None and self.n_junctions is not None and EntryLayout.is_csr_ordered(self.rows):
            self._layout = EntryLayout(self.rows, self.cols, self.n_cells, self.n_junctions)
        return self._layout

    @property
    def n_groups(self) -> int:
        """Number of observed (cell, ATSE) pairs."""
        return int(self.group_row.shape[0])

    @property
    def psi(self) -> torch.Tensor:
        """Observed PSI k / n of each entry."""
        return self.k / self.n

    def cell_has_splicing(self) -> torch.Tensor:
        """Boolean per cell: at least one observed ATSE."""
        has = torch.zeros(self.n_cells, dtype=torch.bool, device=self.rows.device)
        return has.index_fill_(0, self.rows, True) if self.rows.numel() else has


def stored_entries(x: torch.Tensor, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows, columns (minus ``offset``) and values of the stored entries of ``x``.

    ``x`` is a sparse CSR/COO tensor or a dense tensor (then its non-zero entries). Columns below
    ``offset`` (gene columns of a concatenated AnnData) are dropped.
    """
    if x.layout == torch.sparse_csr:
        crow = x.crow_indices()
        rows = torch.repeat_interleave(torch.arange(x.shape[0], device=x.device), crow[1:] - crow[:-1])
        cols, vals = x.col_indices(), x.values()
    elif x.layout == torch.sparse_coo:
        x = x.coalesce()
        rows, cols = x.indices()
        vals = x.values()
    elif x.layout == torch.sparse_csc:
        return stored_entries(x.to_sparse_coo(), offset)
    else:
        nz = x.nonzero(as_tuple=True)
        rows, cols = nz
        vals = x[nz]
    if offset:
        keep = cols >= offset
        rows, cols, vals = rows[keep], cols[keep] - offset, vals[keep]
    return rows.long(), cols.long(), vals


def _lookup(
    rows: torch.Tensor, cols: torch.Tensor, ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor], n_cols: int
) -> torch.Tensor:
    """Values of the sparse ``ref`` (rows, cols, values) at the queried positions (0 where absent)."""
    ref_rows, ref_cols, ref_vals = ref
    out = torch.zeros(rows.shape[0], dtype=torch.float32, device=rows.device)
    if ref_vals.numel() == 0 or rows.numel() == 0:
        return out
    ref_keys = ref_rows * n_cols + ref_cols
    ref_keys, order = torch.sort(ref_keys)
    ref_vals = ref_vals[order].float()
    keys = rows * n_cols + cols
    pos = torch.searchsorted(ref_keys, keys).clamp_max(ref_keys.shape[0] - 1)
    hit = ref_keys[pos] == keys
    out[hit] = ref_vals[pos[hit]]
    return out


def _groups(
    rows: torch.Tensor, events: torch.Tensor, n_events: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cell, ATSE) group of each entry, and the cell and ATSE of each group."""
    keys = rows * n_events + events
    if keys.numel() < 2 or bool((keys[1:] >= keys[:-1]).all()):
        # CSR minibatch with junctions grouped by ATSE: keys arrive sorted, no sort needed.
        uniq, inverse = torch.unique_consecutive(keys, return_inverse=True)
    else:
        uniq, inverse = torch.unique(keys, return_inverse=True)
    return inverse, torch.div(uniq, n_events, rounding_mode="floor"), uniq % n_events


def _take(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` along the first axis (``index_select``: several times faster on CPU)."""
    return values.index_select(0, index)


def _slot_in_event(
    junc2atse: torch.Tensor, atse_ptr: torch.Tensor, atse_junctions: torch.Tensor
) -> torch.Tensor:
    """Position of each junction in its ATSE's junction list (``atse_junctions[atse_ptr[e]:]``)."""
    slot = torch.empty_like(atse_junctions)
    slot[atse_junctions] = (
        torch.arange(atse_junctions.shape[0], device=atse_junctions.device)
        - atse_ptr[junc2atse[atse_junctions]]
    )
    return slot


def _entries_of_groups(
    rows, cols, k, group, group_row, group_event, totals, sizes, nonzero, n_cells, n_junctions
) -> ObservedEntries:
    """:class:`ObservedEntries` built group by group, with the data constants known on building."""
    return ObservedEntries(
        rows=rows,
        cols=cols,
        k=k,
        n=_take(totals, group),
        group=group,
        group_row=group_row,
        group_event=group_event,
        n_cells=n_cells,
        n_junctions=n_junctions,
        _group_n=totals,
        _nonzero=nonzero,
        _group_sizes=sizes,
    )


def observed_entries(
    junction_counts: torch.Tensor,
    junc2atse: torch.Tensor,
    atse_ptr: torch.Tensor,
    atse_junctions: torch.Tensor,
    atse_counts: torch.Tensor | None = None,
    psi_mask: torch.Tensor | None = None,
    offset: int = 0,
) -> ObservedEntries:
    """Observed entries of a splicing minibatch.

    Parameters
    ----------
    junction_counts
        Cells × junctions reads ``k`` (sparse or dense).
    junc2atse
        ATSE index of each junction.
    atse_ptr, atse_junctions
        CSR layout of ATSE → junctions: the junctions of ATSE ``e`` are
        ``atse_junctions[atse_ptr[e]:atse_ptr[e+1]]``.
    atse_counts
        Optional cells × junctions ATSE totals ``n``. When absent, ``n`` is the sum of ``k`` over
        the ATSE and every junction of an ATSE with reads becomes an observed entry.
    psi_mask
        Optional cells × junctions mask; when given, an entry is observed only where it is 1
        (and ``n > 0``).
    offset
        Number of leading non-splicing columns (concatenated AnnData input).
    """
    n_cells = junction_counts.shape[0]
    n_junctions = junc2atse.shape[0]
    n_events = atse_ptr.shape[0] - 1
    if atse_counts is None and junction_counts.layout == torch.sparse_csr and available(junction_counts):
        # One compiled pass on CPU, the same entries in the same order (_compiled_entries).
        built = csr_entries(
            junction_counts.crow_indices(),
            junction_counts.col_indices(),
            junction_counts.values(),
            junc2atse,
            atse_ptr,
            atse_junctions,
            _slot_in_event(junc2atse, atse_ptr, atse_junctions),
            offset,
        )
        if built is not None:
            return _entries_of_groups(*built, n_cells, n_junctions)
    k_ref = stored_entries(junction_counts, offset)
    if atse_counts is None:
        # Derive everything from k: observed ATSEs are those with at least one read.
        k_rows, k_cols, k_vals = k_ref
        pos = k_vals > 0
        if not bool(pos.all()):
            keep = pos.nonzero().view(-1)
            k_rows, k_cols, k_vals = _take(k_rows, keep), _take(k_cols, keep), _take(k_vals, keep)
        k_vals = k_vals.float()
        k_group, group_row, group_event = _groups(k_rows, _take(junc2atse, k_cols), n_events)
        totals = torch.zeros(group_row.shape[0], device=k_vals.device).index_add_(0, k_group, k_vals)
        # Expand every observed ATSE to all its junctions (zero-count junctions are data too).
        first = _take(atse_ptr, group_event)
        sizes = _take(atse_ptr, group_event + 1) - first
        group = torch.repeat_interleave(torch.arange(group_row.shape[0], device=sizes.device), sizes)
        starts = torch.cumsum(sizes, 0) - sizes
        # Position of each entry in atse_junctions: its group's first junction plus its rank in the group.
        within = torch.arange(group.shape[0], device=sizes.device) + _take(first - starts, group)
        cols = _take(atse_junctions, within)
        rows = _take(group_row, group)
        # Each stored count lands at its junction's slot in its group's block of entries; no search.
        k = torch.zeros(group.shape[0], dtype=torch.float32, device=k_vals.device)
        dest = _take(starts, k_group) + _take(_slot_in_event(junc2atse, atse_ptr, atse_junctions), k_cols)
        k.index_copy_(0, dest, k_vals)
        # The entries with reads are where the stored counts landed (ascending unless the junctions
        # of an ATSE are stored out of order); the likelihood reads them instead of searching k > 0.
        if dest.numel() > 1 and not bool((dest[1:] > dest[:-1]).all()):
            dest = torch.sort(dest).values
        return _entries_of_groups(
            rows, cols, k, group, group_row, group_event, totals, sizes, dest, n_cells, n_junctions
        )
    else:
        rows, cols, n = stored_entries(atse_counts, offset)
        keep = n > 0
        if psi_mask is not None:
            keep &= _lookup(rows, cols, stored_entries(psi_mask, offset), n_junctions) > 0
        rows, cols, n = rows[keep], cols[keep], n[keep].float()
        k = _lookup(rows, cols, k_ref, n_junctions)
        group, group_row, group_event = _groups(rows, junc2atse[cols], n_events)
    return ObservedEntries(
        rows=rows,
        cols=cols,
        k=k,
        n=n,
        group=group,
        group_row=group_row,
        group_event=group_event,
        n_cells=n_cells,
        n_junctions=n_junctions,
    )
