"""The partial encoder's ATSE selection and read weighting do what they say."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splicevi import SPLICEVI
from splicevi.data.layers import event_codes


def _model(mdata, **options) -> SPLICEVI:
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    return SPLICEVI(mdata, n_latent=6, **options)


def _splicing_mean(model: SPLICEVI, mdata) -> np.ndarray:
    return model.get_latent_representation(mdata, modality="splicing")


def _marked(mdata, events: list[str]):
    spl = mdata["splicing"]
    spl.var["highly_variable"] = spl.var["event_id"].isin(events).to_numpy()
    return spl.var["highly_variable"].to_numpy()


def test_selection_reads_only_the_marked_atses(small_mdata):
    spl = small_mdata["splicing"]
    events = sorted(spl.var["event_id"].unique())[:10]
    marked = _marked(small_mdata, events)
    model = _model(small_mdata, splicing_encoder_atses="highly_variable")
    np.testing.assert_array_equal(model.module.encoder_junction_weight.numpy(), marked.astype(np.float32))
    model.is_trained_ = True
    before = _splicing_mean(model, small_mdata)
    # Scramble the counts of the unmarked junctions: the splicing posterior must not move.
    other = small_mdata.copy()
    k = sp.csr_matrix(other["splicing"].layers["cell_by_junction_matrix"]).tolil()
    rng = np.random.default_rng(0)
    for j in np.flatnonzero(~marked):
        col = k[:, j].toarray().ravel()
        k[:, j] = sp.csr_matrix(rng.permutation(col)[:, None])
    other["splicing"].layers["cell_by_junction_matrix"] = sp.csr_matrix(k)
    SPLICEVI.setup_mudata(other, batch_key="batch")
    np.testing.assert_allclose(_splicing_mean(model, other), before, atol=1e-5)
    # Without the selection the same scramble moves it (the check above can fail).
    full = _model(small_mdata.copy())
    full.is_trained_ = True
    assert not np.allclose(_splicing_mean(full, small_mdata), _splicing_mean(full, other), atol=1e-3)


def test_selection_without_marks_selects_from_the_data(small_mdata):
    model = _model(small_mdata, splicing_encoder_atses="highly_variable")
    weight = model.module.encoder_junction_weight.numpy()
    codes, _ = event_codes(small_mdata["splicing"].var["event_id"])
    # Whole ATSEs, and not every one of them (the small data has ATSEs without enough pairs of reads).
    for code in np.unique(codes):
        assert np.unique(weight[codes == code]).size == 1
    assert 0 < weight.sum() < weight.size


def test_read_weighting_counts_reads(small_mdata):
    """Same PSI with ten times the reads: unweighted, the splicing posterior mean is unchanged."""
    more = small_mdata.copy()
    more["splicing"].layers["cell_by_junction_matrix"] = sp.csr_matrix(
        small_mdata["splicing"].layers["cell_by_junction_matrix"] * 10
    )
    plain = _model(small_mdata)
    plain.is_trained_ = True
    base = _splicing_mean(plain, small_mdata)
    SPLICEVI.setup_mudata(more, batch_key="batch")
    np.testing.assert_allclose(_splicing_mean(plain, more), base, atol=1e-5)
    weighted = _model(small_mdata, splicing_encoder_weighting="reads")
    weighted.is_trained_ = True
    base_w = _splicing_mean(weighted, small_mdata)
    SPLICEVI.setup_mudata(more, batch_key="batch")
    assert not np.allclose(_splicing_mean(weighted, more), base_w, atol=1e-3)


def test_read_information():
    from splicevi.module._splicevae import read_information

    n = torch.tensor([1.0, 2.0, 10.0, 1000.0])
    torch.testing.assert_close(read_information(n, rho=0.1), n / (1 + (n - 1) * 0.1))
    assert float(read_information(torch.tensor([1e6]), rho=0.1)) == pytest.approx(10.0, rel=1e-3)


def test_unknown_selection_is_refused(small_mdata):
    with pytest.raises(ValueError, match="splicing_encoder_atses"):
        _model(small_mdata, splicing_encoder_atses="top")
    with pytest.raises(ValueError, match="splicing_encoder_weighting"):
        _model(small_mdata, splicing_encoder_weighting="n")


def test_saved_model_keeps_its_selection(small_mdata, tmp_path):
    _marked(small_mdata, sorted(small_mdata["splicing"].var["event_id"].unique())[:5])
    model = _model(small_mdata, splicing_encoder_atses="highly_variable")
    model.train(max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    model.save(str(tmp_path / "m"), save_anndata=False)
    loaded = SPLICEVI.load(str(tmp_path / "m"), adata=small_mdata)
    torch.testing.assert_close(loaded.module.encoder_junction_weight, model.module.encoder_junction_weight)
    np.testing.assert_allclose(
        _splicing_mean(loaded, small_mdata), _splicing_mean(model, small_mdata), atol=1e-5
    )
