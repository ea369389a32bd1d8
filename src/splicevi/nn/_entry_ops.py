"""Products over the observed (cell, junction) entries of a minibatch, as sparse CSR kernels.

The splicing branch touches a minibatch only at its observed entries, through two products:

* pooling, ``out[c] = Σ_j v[c, j] · E[j]`` (a sparse × dense matmul, :func:`entry_matmul`);
* per-entry logits, ``l[c, j] = h[c] · W[j]`` (a sampled dense × dense product, :func:`entry_dot`).

Written with a gather (``E[cols]``, ``W[cols]``) and a scatter (``index_add``) they cost a copy of
``entries × width`` floats forward and a serial scatter backward, which made them most of the
training time on CPU. Here both directions are CSR kernels (``torch.sparse.mm``,
``torch.sparse.sampled_addmm``) on the minibatch's CSR structure and on its transpose (computed
once per minibatch, :class:`EntryLayout`), so nothing of size ``entries × width`` is materialised.
The results equal the gather/scatter formulation up to float rounding (tests/nn/test_entry_ops.py).
"""

from __future__ import annotations

import torch

from ..distributions._compiled import available
from ._compiled_entries import transposed_layout


class EntryLayout:
    """CSR structure of a set of entries (rows non-decreasing) and of its transpose.

    Parameters
    ----------
    rows, cols
        Row and column of each entry; ``rows`` must be non-decreasing (CSR order). Columns within a
        row may come in any order.
    n_rows, n_cols
        Shape of the (virtual) sparse matrix.
    """

    def __init__(
        self,
        rows: torch.Tensor,
        cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        crow: torch.Tensor | None = None,
    ):
        self.rows = rows
        self.cols = cols
        self.n_rows = int(n_rows)
        self.n_cols = int(n_cols)
        # Row pointers: given by a caller that knows them (entries built per row), else counted.
        self.crow = _pointers(rows, self.n_rows) if crow is None else crow
        self._transposed: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def is_csr_ordered(rows: torch.Tensor) -> bool:
        """Whether ``rows`` is non-decreasing (the order the CSR kernels need)."""
        return rows.numel() < 2 or bool((rows[1:] >= rows[:-1]).all())

    def transposed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(order, t_crow, t_cols)``: the entries in column order and the CSR of the transpose."""
        if self._transposed is None and available(self.rows, self.cols):
            # A counting sort by column in one compiled pass on CPU (the same stable order; None
            # if numba cannot compile it here).
            self._transposed = transposed_layout(self.rows, self.cols, self.n_cols)
        if self._transposed is None:
            # Sorting 32-bit keys is about twice as fast as 64-bit ones on CPU.
            keys = self.cols.to(torch.int32) if self.n_cols < 2**31 else self.cols
            order = torch.argsort(keys, stable=True)
            self._transposed = (
                order,
                _pointers(self.cols.index_select(0, order), self.n_cols),
                self.rows.index_select(0, order),
            )
        return self._transposed

    def spmm(self, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """``S @ dense`` with ``S[rows, cols] = values`` (``n_rows × width``)."""
        return _spmm(self.crow, self.cols, values, dense, self.n_rows, self.n_cols)

    def spmm_t(self, values: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        """``S.T @ dense`` (``n_cols × width``)."""
        order, t_crow, t_cols = self.transposed()
        return _spmm(t_crow, t_cols, values.index_select(0, order), dense, self.n_cols, self.n_rows)

    def sddmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a[rows] · b[cols]`` for every entry (row-wise dot products, one per entry)."""
        if self.rows.numel() == 0:
            return a.new_zeros(0)
        pattern = torch.sparse_csr_tensor(
            self.crow,
            self.cols,
            a.new_zeros(self.cols.shape[0]),
            (self.n_rows, self.n_cols),
            check_invariants=False,
        )
        return torch.sparse.sampled_addmm(pattern, a, b.T, beta=0.0).values()


def _pointers(sorted_index: torch.Tensor, n: int) -> torch.Tensor:
    """CSR row pointers of a non-decreasing index (length ``n + 1``)."""
    counts = torch.bincount(sorted_index, minlength=n)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _spmm(crow, cols, values, dense, n_rows: int, n_cols: int) -> torch.Tensor:
    if cols.numel() == 0:
        return dense.new_zeros(n_rows, dense.shape[1])
    matrix = torch.sparse_csr_tensor(crow, cols, values, (n_rows, n_cols), check_invariants=False)
    return torch.sparse.mm(matrix, dense)


class _EntryMatmul(torch.autograd.Function):
    """``out = S(values) @ dense``; gradients for ``values`` and ``dense``."""

    @staticmethod
    def forward(ctx, values, dense, layout):
        ctx.layout = layout
        ctx.save_for_backward(values, dense)
        return layout.spmm(values, dense)

    @staticmethod
    def backward(ctx, grad_out):
        values, dense = ctx.saved_tensors
        layout = ctx.layout
        grad_out = grad_out.contiguous()
        grad_values = layout.sddmm(grad_out, dense) if ctx.needs_input_grad[0] else None
        grad_dense = layout.spmm_t(values, grad_out) if ctx.needs_input_grad[1] else None
        return grad_values, grad_dense, None


class _EntryDot(torch.autograd.Function):
    """``out[e] = h[rows[e]] · weight[cols[e]]``; gradients for ``h`` and ``weight``."""

    @staticmethod
    def forward(ctx, h, weight, layout):
        ctx.layout = layout
        ctx.save_for_backward(h, weight)
        return layout.sddmm(h, weight)

    @staticmethod
    def backward(ctx, grad_out):
        h, weight = ctx.saved_tensors
        layout = ctx.layout
        grad_out = grad_out.contiguous()
        grad_h = layout.spmm(grad_out, weight) if ctx.needs_input_grad[0] else None
        grad_weight = layout.spmm_t(grad_out, h) if ctx.needs_input_grad[1] else None
        return grad_h, grad_weight, None


def entry_matmul(layout: EntryLayout | None, rows, cols, values, dense, n_rows: int) -> torch.Tensor:
    """``out[c] = Σ_e [rows[e] = c] · values[e] · dense[cols[e]]`` (``n_rows × width``).

    With a ``layout`` (entries in CSR order) this runs as sparse kernels; without one it falls back
    to the gather/scatter formulation (the reference the tests compare against).
    """
    if layout is None:
        out = dense.new_zeros(n_rows, dense.shape[1])
        return out.index_add(0, rows, values[:, None] * dense[cols])
    return _EntryMatmul.apply(values.float().contiguous(), dense.float().contiguous(), layout)


def entry_dot(layout: EntryLayout | None, rows, cols, h, weight) -> torch.Tensor:
    """``out[e] = h[rows[e]] · weight[cols[e]]`` for every entry (sparse kernels with a layout)."""
    if layout is None:
        return (h[rows] * weight[cols]).sum(-1)
    return _EntryDot.apply(h.float().contiguous(), weight.float().contiguous(), layout)
