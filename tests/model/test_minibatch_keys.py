"""A minibatch carries only what the module reads, whichever layers were registered.

The reference API registers ``junc_ratio``, ``cell_by_cluster_matrix``, ``cell_by_junction_matrix``
and ``psi_mask``; the lean file only the counts. When the stored totals and mask hold exactly what
the counts give, both set-ups must hand the module the same minibatch (same keys, same tensors) and
give the same loss; a layer that says more than the counts must stay in and be used.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from splicevi import SPLICEVI
from splicevi.data.layers import derivable_layers, event_codes

LEAN_KEYS = ["X", "batch", "junc_counts"]


def _reference(mdata):
    """Set up as the reference API shows: all four splicing layers named."""
    SPLICEVI.setup_mudata(
        mdata,
        rna_layer=None,
        junc_ratio_layer="junc_ratio",
        atse_counts_layer="cell_by_cluster_matrix",
        junc_counts_layer="cell_by_junction_matrix",
        psi_mask_layer="psi_mask",
        batch_key="batch",
        modalities={
            "rna_layer": "rna",
            "junc_ratio_layer": "splicing",
            "atse_counts_layer": "splicing",
            "junc_counts_layer": "splicing",
            "psi_mask_layer": "splicing",
            "batch_key": "splicing",
        },
    )
    return mdata


def _lean(mdata):
    """Set up as the lean file is: the junction counts only."""
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    return mdata


def _first_batch(model, adata=None):
    loader = model._data_loader(adata, indices=np.arange(64), batch_size=64)
    return next(iter(loader))


def test_reference_setup_minibatch_carries_only_counts(small_mdata):
    model = SPLICEVI(_reference(small_mdata), n_latent=6)
    assert sorted(_first_batch(model)) == LEAN_KEYS
    # The training loader as well.
    seen = []
    original = model.module.inference

    def spy(*args, **kwargs):
        seen.append({k for k in ("atse_counts", "psi_mask", "junction_ratio") if kwargs.get(k) is not None})
        return original(*args, **kwargs)

    model.module.inference = spy
    model.train(
        max_epochs=1,
        batch_size=64,
        train_size=1.0,
        early_stopping=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
    )
    assert seen and all(not s for s in seen)


def test_reference_and_lean_give_identical_minibatches_and_loss(small_mdata):
    lean_data = small_mdata.copy()
    torch.manual_seed(0)
    ref = SPLICEVI(_reference(small_mdata), n_latent=6)
    lean = SPLICEVI(_lean(lean_data), n_latent=6)
    lean.module.load_state_dict(ref.module.state_dict())
    a, b = _first_batch(ref), _first_batch(lean)
    assert sorted(a) == sorted(b) == LEAN_KEYS
    for key in a:
        x, y = a[key], b[key]
        x = x.to_dense() if x.layout != torch.strided else x
        y = y.to_dense() if y.layout != torch.strided else y
        assert torch.equal(x, y), key
    losses = []
    for model, tensors in ((ref, a), (lean, b)):
        model.module.train()
        torch.manual_seed(1)
        _, _, loss = model.module(tensors)
        losses.append(float(loss.loss.detach()))
    assert losses[0] == losses[1]


def test_concatenated_anndata_reference_layers_are_left_out(small_sim):
    mdata = small_sim.to_mudata()
    rna, spl = mdata.mod["rna"], mdata.mod["splicing"]
    layers = {name: sp.hstack([sp.csr_matrix(rna.shape), spl.layers[name]]).tocsr() for name in spl.layers}
    adata = ad.AnnData(
        X=sp.hstack([rna.X, sp.csr_matrix(spl.shape)]).tocsr(),
        obs=rna.obs.copy(),
        var=pd.concat([rna.var, spl.var]),
        layers=layers,
    )
    SPLICEVI.setup_anndata(
        adata,
        junc_ratio="junc_ratio",
        cell_by_junction_matrix="cell_by_junction_matrix",
        cell_by_cluster_matrix="cell_by_cluster_matrix",
        psi_mask_layer="psi_mask",
        batch_key="batch",
    )
    model = SPLICEVI(adata, n_genes=rna.n_vars, n_junctions=spl.n_vars, n_latent=6)
    assert sorted(_first_batch(model)) == LEAN_KEYS


def test_totals_that_differ_from_the_counts_stay_and_are_used(small_mdata):
    spl = small_mdata.mod["splicing"]
    n = spl.layers["cell_by_cluster_matrix"].copy()
    n.data = n.data + 1.0  # totals above the sum of k: information the counts do not have
    spl.layers["cell_by_cluster_matrix"] = n
    model = SPLICEVI(_reference(small_mdata), n_latent=6)
    batch = _first_batch(model)
    assert {"atse_counts", "psi_mask"} <= set(batch)
    obs = model.module.observed(
        *(
            model.module._get_inference_input(batch)[k]
            for k in ("junction_counts", "atse_counts", "psi_mask", "junction_ratio")
        )
    )
    # n of each entry is the stored total, not the sum of k.
    stored = n[:64].toarray()[obs.rows.numpy(), obs.cols.numpy()]
    np.testing.assert_array_equal(obs.n.numpy(), stored)


def test_mask_hiding_observed_entries_stays(small_mdata):
    spl = small_mdata.mod["splicing"]
    mask = spl.layers["psi_mask"].copy()
    mask.data[::2] = 0.0
    spl.layers["psi_mask"] = mask
    model = SPLICEVI(_reference(small_mdata), n_latent=6)
    assert {"atse_counts", "psi_mask"} <= set(_first_batch(model))


def test_derivable_layers(small_mdata):
    spl = small_mdata.mod["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    k, n, mask = (
        spl.layers[name] for name in ("cell_by_junction_matrix", "cell_by_cluster_matrix", "psi_mask")
    )
    assert derivable_layers(k, codes, n, mask) == {"atse_counts": True, "psi_mask": True}
    wrong = n.copy()
    wrong.data[-1] += 1
    assert derivable_layers(k, codes, wrong, mask)["atse_counts"] is False
    # A total stored on a junction whose ATSE has no read is an observed entry the counts lack.
    extra = n.tolil()
    extra[0, int(np.setdiff1d(np.arange(n.shape[1]), n[0].indices)[0])] = 3.0
    assert derivable_layers(k, codes, extra.tocsr(), None)["atse_counts"] is False
    # Explicit zeros in the stored totals are not observed entries.
    zeros = sp.csr_matrix(
        (np.r_[n.data, 0.0], (np.r_[n.tocoo().row, 0], np.r_[n.tocoo().col, 0])), shape=n.shape
    )
    if zeros.nnz:
        assert derivable_layers(k, codes, zeros, None)["atse_counts"] is True
    # A mask with extra ones outside the observed entries hides nothing.
    assert derivable_layers(k, codes, None, sp.csr_matrix(np.ones(k.shape)))["psi_mask"] is True
    # Offset (genes first): the same answer on the junction columns.
    pad = sp.csr_matrix((k.shape[0], 5))
    assert derivable_layers(
        sp.hstack([pad, k]).tocsr(), codes, sp.hstack([pad, n]).tocsr(), None, offset=5
    ) == {"atse_counts": True, "psi_mask": True}


@pytest.mark.parametrize("with_mask", [False, True])
def test_lean_setup_never_loads_a_mask_the_module_ignores(small_mdata, with_mask):
    kwargs = {"psi_mask_layer": "psi_mask"} if with_mask else {}
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch", **kwargs)
    model = SPLICEVI(small_mdata, n_latent=6)
    assert sorted(_first_batch(model)) == LEAN_KEYS


def test_inference_and_ds_loaders_are_lean_and_agree(small_mdata):
    lean_data = small_mdata.copy()
    torch.manual_seed(0)
    ref = SPLICEVI(_reference(small_mdata), n_latent=6)
    lean = SPLICEVI(_lean(lean_data), n_latent=6)
    lean.module.load_state_dict(ref.module.state_dict())
    calls = []
    original = ref.module.inference

    def spy(*args, **kwargs):
        calls.append(kwargs.get("atse_counts") is None and kwargs.get("psi_mask") is None)
        return original(*args, **kwargs)

    ref.module.inference = spy
    for model in (ref, lean):
        model.is_trained_ = True
        model.module.eval()
    np.testing.assert_array_equal(ref.get_latent_representation(), lean.get_latent_representation())
    groups = small_mdata.obs["cell_type"].astype(str).to_numpy()
    idx1, idx2 = np.where(groups == groups[0])[0], np.where(groups != groups[0])[0]
    torch.manual_seed(3)
    a = ref.differential_splicing(idx1=idx1, idx2=idx2, silent=True)
    torch.manual_seed(3)
    b = lean.differential_splicing(idx1=idx1, idx2=idx2, silent=True)
    assert calls and all(calls)
    pd.testing.assert_frame_equal(a, b)
