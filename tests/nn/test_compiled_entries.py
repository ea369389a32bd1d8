"""The compiled (numba) CPU passes give exactly what the tensor forms give, in the same order.

Building a minibatch's observed entries, ordering counts and the entries' transposed layout each
have a tensor form (the reference, and the path on GPUs) and a compiled one used on CPU. Training
must not depend on which ran: every array is compared bit for bit, and a short training with each
gives identical parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splicevi.distributions import _compiled
from splicevi.distributions._splicing import RISING_TERMS_MAX, count_order
from splicevi.module import observed_entries
from splicevi.nn._entry_ops import EntryLayout

FIELDS = ("rows", "cols", "k", "n", "group", "group_row", "group_event")


@pytest.fixture
def tensor_forms(monkeypatch):
    """A function that runs its argument with the compiled passes off."""

    def run(fn):
        monkeypatch.setattr(_compiled, "ENABLED", False)
        try:
            return fn()
        finally:
            monkeypatch.setattr(_compiled, "ENABLED", True)

    return run


def _csr(k: np.ndarray) -> torch.Tensor:
    csr = sp.csr_matrix(k.astype(np.float32))
    return torch.sparse_csr_tensor(
        torch.as_tensor(csr.indptr, dtype=torch.long),
        torch.as_tensor(csr.indices, dtype=torch.long),
        torch.as_tensor(csr.data),
        csr.shape,
    )


def _layout(codes: np.ndarray, reverse_within: bool = False):
    """``junc2atse``, ``atse_ptr`` and ``atse_junctions`` of the module for junction ATSE codes."""
    module_codes = torch.as_tensor(codes)
    order = torch.argsort(module_codes, stable=True)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.bincount(module_codes), 0)])
    if reverse_within:  # an ATSE's junctions listed in decreasing column order
        order = torch.cat([order[ptr[e] : ptr[e + 1]].flip(0) for e in range(ptr.shape[0] - 1)])
    return module_codes, ptr, order


@pytest.mark.parametrize("case", ["grouped", "scattered", "reverse_within", "offset", "stored_zeros", "deep"])
def test_compiled_observed_entries_equal_the_tensor_form(case, tensor_forms):
    rng = np.random.default_rng(
        ["grouped", "scattered", "reverse_within", "offset", "stored_zeros", "deep"].index(case)
    )
    sizes = rng.integers(2, 6, size=40)
    codes = np.repeat(np.arange(sizes.shape[0]), sizes)
    if case == "scattered":  # junctions of an ATSE spread over the columns: the tensor form sorts
        codes = rng.permutation(codes)
    n_cells, n_junctions = 50, codes.shape[0]
    lam = 30.0 if case == "deep" else 0.8  # deep: counts above the rising-factorial limit too
    k = rng.poisson(lam, size=(n_cells, n_junctions)) * (rng.random((n_cells, n_junctions)) < 0.3)
    k[[0, 7]] = 0  # cells without a read
    offset = 0
    if case == "offset":  # gene columns before the junctions (concatenated AnnData)
        offset = 9
        k = np.c_[rng.poisson(3.0, size=(n_cells, offset)), k]
    x = _csr(k)
    if case == "stored_zeros":  # explicit zeros stored in the sparse counts
        values = x.values().clone()
        values[::5] = 0.0
        x = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape)
    tables = _layout(codes, reverse_within=case == "reverse_within")

    def build():
        obs = observed_entries(x, *tables, offset=offset)
        return obs, obs.reads_by_count(), obs.groups_by_total(), obs.layout().transposed()

    compiled, reference = build(), tensor_forms(build)
    for field in FIELDS:
        a, b = getattr(compiled[0], field), getattr(reference[0], field)
        assert a.dtype == b.dtype and torch.equal(a, b), field
    assert torch.equal(compiled[0].nonzero(), reference[0].nonzero())
    assert torch.equal(compiled[0].group_totals(), reference[0].group_totals())
    assert torch.equal(compiled[0].layout().crow, reference[0].layout().crow)
    for a, b in zip(compiled[1:3], reference[1:3], strict=True):
        assert torch.equal(a.order, b.order) and a.above == b.above
    for a, b in zip(compiled[3], reference[3], strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_counting_order_is_the_stable_sort(tensor_forms):
    rng = np.random.default_rng(3)
    counts = torch.as_tensor(rng.poisson(4.0, size=5000), dtype=torch.float32)
    counts[:50] = torch.as_tensor(rng.integers(RISING_TERMS_MAX, 500, size=50), dtype=torch.float32)
    positions = torch.as_tensor(rng.permutation(20_000)[:5000])
    for args in ((counts,), (counts, positions)):
        a, b = count_order(*args), tensor_forms(lambda args=args: count_order(*args))
        assert torch.equal(a.order, b.order) and a.above == b.above
    # Not whole numbers: neither form orders them.
    assert count_order(counts + 0.5) is None


def test_transposed_layout_is_the_stable_argsort(tensor_forms):
    rng = np.random.default_rng(4)
    rows = torch.as_tensor(np.sort(rng.integers(0, 64, size=3000)))
    cols = torch.as_tensor(rng.integers(0, 500, size=3000))
    compiled = EntryLayout(rows, cols, 64, 500).transposed()
    reference = tensor_forms(lambda: EntryLayout(rows, cols, 64, 500).transposed())
    for a, b in zip(compiled, reference, strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_training_is_bit_identical_with_either_form(small_mdata, tensor_forms):
    import scvi

    from splicevi import SPLICEVI

    def train():
        SPLICEVI.setup_mudata(small_mdata)
        scvi.settings.seed = 0  # every random stream of training, the data split's included
        torch.manual_seed(0)
        model = SPLICEVI(small_mdata, n_latent=4, n_hidden=16)
        model.train(
            max_epochs=2, batch_size=64, train_size=1.0, early_stopping=False, enable_progress_bar=False
        )
        return {name: p.detach().clone() for name, p in model.module.named_parameters()}

    compiled, reference = train(), tensor_forms(train)
    assert compiled.keys() == reference.keys()
    for name in compiled:
        assert torch.equal(compiled[name], reference[name]), name


def test_a_numba_that_cannot_compile_falls_back_to_the_tensor_forms(monkeypatch, tensor_forms):
    from numba.core.errors import TypingError

    from splicevi.nn import _compiled_entries

    def broken(*args):
        raise TypingError("this numba does not match this numpy")

    rng = np.random.default_rng(5)
    codes = np.repeat(np.arange(20), 3)
    k = rng.poisson(1.0, size=(30, codes.shape[0])) * (rng.random((30, codes.shape[0])) < 0.3)
    x, tables = _csr(k), _layout(codes)
    reference = tensor_forms(lambda: observed_entries(x, *tables))
    monkeypatch.setattr(_compiled, "ENABLED", True)  # restored after the test
    monkeypatch.setattr(_compiled_entries, "_count_groups", broken)
    with pytest.warns(RuntimeWarning, match="numba could not compile csr_entries"):
        obs = observed_entries(x, *tables)
    assert not _compiled.ENABLED  # the compiled loops are off for the rest of the process
    for field in FIELDS:
        assert torch.equal(getattr(obs, field), getattr(reference, field)), field
