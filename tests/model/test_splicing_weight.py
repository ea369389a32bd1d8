"""The splicing reconstruction weight scales the splicing term of the loss, and ``balanced`` reads it from the data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from splicevi import SPLICEVI


def _model(mdata, **options) -> SPLICEVI:
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    return SPLICEVI(mdata, n_latent=6, **options)


def _forward(model: SPLICEVI, tensors):
    """Loss output of one minibatch in eval mode with a fixed latent sample."""
    model.module.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        _, _, out = model.module(tensors)
    return out


def test_weight_scales_only_the_splicing_term(small_mdata):
    """Weight w: the loss grows by (w - 1) × mean splicing reconstruction; reported terms stay the likelihood."""
    plain = _model(small_mdata)
    weighted = _model(small_mdata, splicing_reconstruction_weight=4.0)
    weighted.module.load_state_dict(
        {**plain.module.state_dict(), "splicing_reconstruction_weight": torch.tensor(4.0)}
    )
    tensors = next(iter(plain._data_loader(batch_size=64)))
    a, b = _forward(plain, tensors), _forward(weighted, tensors)
    for key, value in a.reconstruction_loss.items():
        torch.testing.assert_close(b.reconstruction_loss[key], value)
    rl_spl = a.reconstruction_loss["reconstruction_loss_splicing"]
    assert float(rl_spl.mean()) > 0
    expected = float(a.loss) + 3.0 * float(rl_spl.mean())
    assert float(b.loss) == pytest.approx(expected, rel=1e-5)


def test_balanced_is_the_ratio_of_reads(small_mdata):
    """``balanced``: median gene reads over median junction reads per cell, at least 1."""
    genes = sp.csr_matrix(small_mdata["rna"].X)
    junctions = sp.csr_matrix(small_mdata["splicing"].layers["cell_by_junction_matrix"])
    g, j = np.asarray(genes.sum(1)).ravel(), np.asarray(junctions.sum(1)).ravel()
    expected = max(1.0, np.median(g[g > 0]) / np.median(j[j > 0]))
    model = _model(small_mdata, splicing_reconstruction_weight="balanced")
    assert float(model.module.splicing_reconstruction_weight) == pytest.approx(expected, rel=1e-5)
    # Ten times the gene reads: ten times the weight (when the ratio is above 1).
    deeper = small_mdata.copy()
    deeper["rna"].X = genes * 10
    ratio = float(
        _model(deeper, splicing_reconstruction_weight="balanced").module.splicing_reconstruction_weight
    )
    assert ratio == pytest.approx(max(1.0, 10 * np.median(g[g > 0]) / np.median(j[j > 0])), rel=1e-5)
    assert ratio > 1.0
    # A number is taken as given.
    assert (
        float(_model(small_mdata, splicing_reconstruction_weight=2.5).module.splicing_reconstruction_weight)
        == 2.5
    )


def test_balanced_without_expression_is_one(small_sim):
    mdata = small_sim.to_mudata(with_expression=False)
    SPLICEVI.setup_mudata(mdata)
    model = SPLICEVI(mdata, splicing_reconstruction_weight="balanced")
    assert float(model.module.splicing_reconstruction_weight) == 1.0


@pytest.mark.parametrize("value", ["auto", 0.0, -1.0])
def test_bad_weight_is_refused(small_mdata, value):
    with pytest.raises(ValueError, match="splicing_reconstruction_weight"):
        _model(small_mdata, splicing_reconstruction_weight=value)


def test_saved_model_keeps_its_weight(small_mdata, tmp_path):
    model = _model(small_mdata, splicing_reconstruction_weight="balanced")
    model.train(max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    model.save(str(tmp_path / "m"), save_anndata=False)
    loaded = SPLICEVI.load(str(tmp_path / "m"), adata=small_mdata)
    torch.testing.assert_close(
        loaded.module.splicing_reconstruction_weight, model.module.splicing_reconstruction_weight
    )


def _gradients(model: SPLICEVI, tensors) -> tuple:
    """Gradients of one training-mode loss (fixed latent sample, no dropout) by parameter name."""
    module = model.module
    module.train()
    for m in module.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    module.zero_grad()
    torch.manual_seed(1)
    _, _, out = module(tensors)
    out.loss.backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}, out


def test_latent_weight_scales_the_splicing_pull_on_the_encoders_only(small_mdata):
    """Latent weight w: same loss, same decoder gradient; the encoders' splicing gradient times w."""
    plain = _model(small_mdata)
    weighted = _model(small_mdata, splicing_latent_weight=4.0)
    # Decoder weights start at zero (no gradient into the latent yet): give them a trained-like value.
    state = plain.module.state_dict()
    generator = torch.Generator().manual_seed(2)
    weight = state["z_decoder_splicing.weight"]
    state["z_decoder_splicing.weight"] = 0.3 * torch.randn(weight.shape, generator=generator)
    plain.module.load_state_dict(state)
    weighted.module.load_state_dict({**state, "splicing_latent_weight": torch.tensor(4.0)})
    tensors = next(iter(plain._data_loader(batch_size=64)))
    g1, out1 = _gradients(plain, tensors)
    g4, out4 = _gradients(weighted, tensors)
    assert float(out4.loss.detach()) == pytest.approx(float(out1.loss.detach()), rel=1e-6)
    decoder = [n for n in g1 if n.startswith("z_decoder_splicing.")]
    assert decoder
    for name in decoder:
        torch.testing.assert_close(g4[name], g1[name])
    # The splicing encoder's gradient is the KL part plus the splicing part (times w); with the
    # splicing part isolated by a third model at w = 2, the parts must add up linearly in w.
    doubled = _model(small_mdata, splicing_latent_weight=2.0)
    doubled.module.load_state_dict({**state, "splicing_latent_weight": torch.tensor(2.0)})
    g2, _ = _gradients(doubled, tensors)
    name = "z_encoder_splicing.skip.weight"
    splicing_part = g2[name] - g1[name]
    assert float(splicing_part.abs().max()) > 0
    torch.testing.assert_close(g4[name], g1[name] + 3.0 * splicing_part, rtol=1e-4, atol=1e-6)


def test_latent_weight_is_saved_and_checked(small_mdata, tmp_path):
    model = _model(small_mdata, splicing_latent_weight=5.0)
    model.save(tmp_path / "m", overwrite=True)
    loaded = SPLICEVI.load(tmp_path / "m", adata=small_mdata)
    assert float(loaded.module.splicing_latent_weight) == pytest.approx(5.0)
    for bad in (0.0, -1.0, "5", True):
        with pytest.raises(ValueError, match="splicing_latent_weight"):
            _model(small_mdata, splicing_latent_weight=bad)
