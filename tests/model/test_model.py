"""SPLICEVI model core: every option trains, save/load, missing modalities, input checks."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from model_fixtures import OPTIONS
from splicevi import SPLICEVI
from splicevi.data import simulate

from conftest import QUIET


def _setup(mdata, **kwargs):
    SPLICEVI.setup_mudata(mdata, batch_key="batch", **kwargs)
    return mdata


@pytest.mark.slow
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults"
)
def test_every_option_trains(small_mdata, options):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, **options)
    model.train(max_epochs=2, batch_size=64, **QUIET)
    loss = model.history["elbo_train"].to_numpy(dtype=float)
    assert np.all(np.isfinite(loss))
    z = model.get_latent_representation()
    expected = model.module.n_latent * (2 if options.get("modality_weights") == "concatenate" else 1)
    assert z.shape == (small_mdata.n_obs, expected)
    assert np.all(np.isfinite(z))
    if options.get("fully_paired"):
        with pytest.raises(ValueError):
            model.get_latent_representation(modality="splicing")
    else:
        assert model.get_latent_representation(modality="splicing").shape == (
            small_mdata.n_obs,
            model.module.n_latent,
        )


@pytest.mark.parametrize(
    "train_kwargs",
    [
        {"lr_scheduler_type": "step", "step_size": 1},
        {"reduce_lr_on_plateau": True, "lr_patience": 1},
        {"gradient_clipping": False, "adversarial_mixing": False, "early_stopping": False},
        {"n_epochs_kl_warmup": None, "n_steps_kl_warmup": 5, "check_val_every_n_epoch": 1},
        {"train_size": 0.8, "validation_size": 0.2, "shuffle_set_split": False, "early_stopping_patience": 1},
    ],
)
def test_train_arguments(small_mdata, train_kwargs):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=8)
    model.train(max_epochs=3, batch_size=64, lr=1e-3, **train_kwargs, **QUIET)
    assert model.is_trained_
    assert np.all(np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)))


def test_step_scheduler_lowers_lr(small_mdata):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=8)
    model.train(
        max_epochs=3,
        lr=1e-3,
        lr_scheduler_type="step",
        step_size=1,
        lr_factor=0.5,
        early_stopping=False,
        **QUIET,
    )
    optimizer = model.trainer.optimizers[0] if hasattr(model, "trainer") else None
    if optimizer is None:
        pytest.skip("trainer not kept by this scvi-tools version")
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5**3)


def test_gradient_clipping_bounds_the_norm(small_mdata):
    from splicevi.model._training import SplicingTrainingPlan

    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=8)
    plan = SplicingTrainingPlan(model.module, gradient_clipping=True, gradient_clipping_max_norm=1e-3)
    for p in model.module.parameters():
        p.grad = torch.ones_like(p)
    plan.on_before_optimizer_step(None)
    norm = torch.sqrt(sum((p.grad**2).sum() for p in model.module.parameters()))
    assert float(norm) == pytest.approx(1e-3, rel=1e-3)


def test_minibatches_reach_the_module_sparse(small_mdata, monkeypatch):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=8)
    layouts = []
    original = model.module.inference

    def spy(*args, **kwargs):
        layouts.append(kwargs["junction_counts"].layout)
        return original(*args, **kwargs)

    monkeypatch.setattr(model.module, "inference", spy)
    model.train(max_epochs=1, batch_size=64, **QUIET)
    assert layouts and all(layout == torch.sparse_csr for layout in layouts)


def test_save_load_gives_identical_latents(small_mdata, tmp_path):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=6)
    model.train(max_epochs=2, **QUIET)
    z = model.get_latent_representation()
    model.save(tmp_path / "model", overwrite=True)
    loaded = SPLICEVI.load(tmp_path / "model", adata=small_mdata)
    np.testing.assert_allclose(loaded.get_latent_representation(), z, rtol=1e-5, atol=1e-6)
    assert torch.equal(loaded.module.junc2atse, model.module.junc2atse)
    # The junction -> ATSE map is part of the saved state.
    saved = torch.load(tmp_path / "model" / "model.pt", weights_only=False)
    assert "junc2atse" in saved["model_state_dict"]
    # Only setup arguments are saved, never data objects.
    setup_args = saved["attr_dict"]["registry_"]["setup_args"]
    assert not any(isinstance(v, (ad.AnnData, md.MuData)) for v in setup_args.values())
    # A fresh load from disk (no in-memory registry) works on a new copy of the data.
    again = SPLICEVI.load(tmp_path / "model", adata=small_mdata.copy())
    np.testing.assert_allclose(again.get_latent_representation(), z, rtol=1e-5, atol=1e-6)


def test_load_on_mismatched_features_raises(small_mdata, tmp_path):
    _setup(small_mdata)
    model = SPLICEVI(small_mdata, n_latent=6)
    model.train(max_epochs=1, **QUIET)
    model.save(tmp_path / "model", overwrite=True)
    other = small_mdata.copy()
    spl = other.mod["splicing"]
    renamed = spl.var.copy()
    renamed.index = [f"x{i}" for i in range(spl.n_vars)]
    spl.var = renamed
    other.update()
    with pytest.raises(ValueError, match="differ"):
        SPLICEVI.load(tmp_path / "model", adata=other)
    # Fewer junctions (whole ATSEs dropped) -> different shapes.
    keep = spl.var["event_id"].isin(spl.var["event_id"].unique()[:-3]).to_numpy()
    fewer = md.MuData(
        {"rna": small_mdata.mod["rna"].copy(), "splicing": small_mdata.mod["splicing"][:, keep].copy()}
    )
    fewer.obs["batch"] = small_mdata.obs["batch"].to_numpy()
    with pytest.raises(ValueError):
        SPLICEVI.load(tmp_path / "model", adata=fewer)


def test_cells_missing_one_modality(small_sim):
    mdata = small_sim.to_mudata()
    rna, spl = mdata.mod["rna"], mdata.mod["splicing"]
    no_expr, no_spl = np.arange(0, 20), np.arange(20, 40)
    x = rna.X.tolil()
    x[no_expr] = 0
    rna.X = x.tocsr()
    for layer in spl.layers:
        m = spl.layers[layer].tolil()
        m[no_spl] = 0
        spl.layers[layer] = m.tocsr()
        spl.layers[layer].eliminate_zeros()
    _setup(mdata)
    model = SPLICEVI(mdata, n_latent=6)
    model.train(max_epochs=2, batch_size=200, **QUIET)  # one minibatch holds both kinds of cells
    joint = model.get_latent_representation()
    expr = model.get_latent_representation(modality="expression")
    splicing = model.get_latent_representation(modality="splicing")
    assert np.all(np.isfinite(joint))
    # A cell without splicing takes its posterior from expression alone, and vice versa.
    np.testing.assert_allclose(joint[no_spl], expr[no_spl], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(joint[no_expr], splicing[no_expr], rtol=1e-5, atol=1e-5)
    both = np.arange(40, 60)
    assert not np.allclose(joint[both], expr[both])


def test_splicing_only_data_trains():
    sim = simulate(n_cells=120, n_genes=40, n_events=30, n_types=3, observed_fraction=0.3, seed=5)
    mdata = sim.to_mudata(with_expression=False)
    assert list(mdata.mod) == ["splicing"]
    SPLICEVI.setup_mudata(mdata)
    model = SPLICEVI(mdata, n_latent=5)
    assert model.module.n_input_genes == 0
    model.train(max_epochs=2, **QUIET)
    joint = model.get_latent_representation()
    np.testing.assert_allclose(joint, model.get_latent_representation(modality="splicing"), rtol=1e-6)
    with pytest.raises(ValueError, match="no expression"):
        model.get_latent_representation(modality="expression")


def test_reference_layout_dense_ratio_and_mask(small_mdata):
    spl = small_mdata.mod["splicing"]
    spl.layers["junc_ratio"] = spl.layers["junc_ratio"].toarray()
    spl.layers["psi_mask"] = spl.layers["psi_mask"].toarray()
    spl.layers["cell_by_cluster_matrix"] = spl.layers["cell_by_cluster_matrix"].toarray()
    del spl.layers["cell_by_junction_matrix"]  # ratio x totals gives the counts
    SPLICEVI.setup_mudata(
        small_mdata,
        junc_ratio_layer="junc_ratio",
        atse_counts_layer="cell_by_cluster_matrix",
        psi_mask_layer="psi_mask",
        batch_key="batch",
        modalities={"rna_layer": "rna", "junc_ratio_layer": "splicing"},
    )
    model = SPLICEVI(small_mdata, n_latent=6, initialize_embeddings_from_pca=True)
    # The centre comes from ratio × totals: every junction's mean PSI lies in [0, 1].
    center = model.module.psi_center.numpy()
    assert center.min() >= 0 and center.max() <= 1 and center.std() > 0
    model.train(max_epochs=2, **QUIET)
    assert np.all(np.isfinite(model.get_latent_representation()))


def test_stored_totals_and_derived_totals_agree(small_mdata):
    _setup(small_mdata, atse_counts_layer="cell_by_cluster_matrix", psi_mask_layer="psi_mask")
    torch.manual_seed(0)
    stored = SPLICEVI(small_mdata, n_latent=6)
    derived_data = small_mdata.copy()
    _setup(derived_data)
    derived = SPLICEVI(derived_data, n_latent=6)
    derived.module.load_state_dict(stored.module.state_dict())
    stored.module.eval()
    derived.module.eval()
    for model in (stored, derived):
        model.is_trained_ = True
    np.testing.assert_allclose(
        stored.get_latent_representation(modality="splicing"),
        derived.get_latent_representation(modality="splicing"),
        rtol=1e-5,
        atol=1e-6,
    )


def test_concatenated_anndata(small_sim):
    mdata = small_sim.to_mudata()
    rna, spl = mdata.mod["rna"], mdata.mod["splicing"]
    n_genes = rna.n_vars
    layers = {name: sp.hstack([sp.csr_matrix(rna.shape), spl.layers[name]]).tocsr() for name in spl.layers}
    var = pd.concat([rna.var, spl.var])
    adata = ad.AnnData(
        X=sp.hstack([rna.X, sp.csr_matrix(spl.shape)]).tocsr(), obs=rna.obs.copy(), var=var, layers=layers
    )
    SPLICEVI.setup_anndata(adata, batch_key="batch")
    model = SPLICEVI(adata, n_genes=n_genes, n_junctions=spl.n_vars, n_latent=6)
    model.train(max_epochs=2, **QUIET)
    assert model.get_latent_representation().shape == (adata.n_obs, 6)
    with pytest.raises(ValueError, match="n_junctions"):
        SPLICEVI(adata, n_genes=n_genes, n_junctions=spl.n_vars + 1)


def test_load_query_data_new_batch(small_sim):
    mdata = small_sim.to_mudata()
    ref = mdata[mdata.obs["batch"] == "batch0"].copy()
    query = mdata[mdata.obs["batch"] == "batch1"].copy()
    query.obs["batch"] = "batchQ"
    query.mod["splicing"].obs["batch"] = "batchQ"
    _setup(ref)
    model = SPLICEVI(ref, n_latent=6)
    model.train(max_epochs=2, **QUIET)
    q = SPLICEVI.load_query_data(query, model)
    q.train(max_epochs=2, plan_kwargs={"weight_decay": 0.0}, **QUIET)
    z = q.get_latent_representation()
    assert z.shape == (query.n_obs, 6) and np.all(np.isfinite(z))


# ---------------------------------------------------------------- bad input
def _broken(mdata, layer, fn):
    spl = mdata.mod["splicing"]
    m = spl.layers[layer].copy()
    fn(m)
    spl.layers[layer] = m
    return mdata


@pytest.mark.parametrize(
    ("layer", "fn", "kwargs", "message"),
    [
        ("cell_by_junction_matrix", lambda m: m.data.__setitem__(0, -1), {}, "negative"),
        ("cell_by_junction_matrix", lambda m: m.data.__setitem__(0, np.nan), {}, "NaN"),
        ("cell_by_junction_matrix", lambda m: m.data.__setitem__(0, 0.5), {}, "non-integer"),
        (
            "cell_by_junction_matrix",
            lambda m: m.data.__setitem__(0, 1e6),
            {"atse_counts_layer": "cell_by_cluster_matrix"},
            "k > n",
        ),
        (
            "cell_by_cluster_matrix",
            lambda m: m.data.__setitem__(0, np.inf),
            {"atse_counts_layer": "cell_by_cluster_matrix"},
            "NaN/inf",
        ),
    ],
)
def test_bad_values_raise(small_mdata, layer, fn, kwargs, message):
    _broken(small_mdata, layer, fn)
    with pytest.raises(ValueError, match=message) as err:
        _setup(small_mdata, **kwargs)
    assert layer in str(err.value)


def test_missing_layer_raises(small_mdata):
    with pytest.raises(ValueError, match="'no_such_layer' not found"):
        _setup(small_mdata, junc_counts_layer="no_such_layer")
    del small_mdata.mod["splicing"].layers["cell_by_junction_matrix"]
    del small_mdata.mod["splicing"].layers["junc_ratio"]
    with pytest.raises(ValueError, match="no junction counts"):
        _setup(small_mdata)


def test_event_id_problems_raise(small_mdata):
    var = small_mdata.mod["splicing"].var
    var["event_id"] = var["event_id"].astype(object)
    first = var.index[0]
    var.loc[first, "event_id"] = np.nan
    with pytest.raises(ValueError, match="no 'event_id'"):
        _setup(small_mdata)
    var.loc[first, "event_id"] = "lonely_event"
    with pytest.raises(ValueError, match="single junction"):
        _setup(small_mdata)
    small_mdata.mod["splicing"].var = var.drop(columns="event_id")
    with pytest.raises(ValueError, match="no 'event_id' column"):
        _setup(small_mdata)


def test_shape_checks():
    from splicevi.model._validation import check_shapes

    with pytest.raises(ValueError, match="shape"):
        check_shapes({"junc_ratio": np.zeros((3, 4))}, (3, 5))


def test_partial_encoder_latent_carries_splicing_differences():
    """Regression test: the partial encoder's posterior means separate types that differ in splicing.

    Before the pooled codes were standardised, the means hardly varied between cells (separation of
    type means ~0.01 posterior sd, k-NN purity at chance) and the splicing latent was useless.
    """
    import scvi

    scvi.settings.seed = 0
    sim = simulate(
        n_cells=600, n_genes=50, n_events=200, n_types=3, frac_ds_events=0.5, observed_fraction=0.2, seed=11
    )
    mdata = sim.to_mudata(with_expression=False)
    SPLICEVI.setup_mudata(mdata)
    model = SPLICEVI(mdata, n_latent=10)
    model.train(max_epochs=30, lr=1e-3, n_epochs_kl_warmup=10, early_stopping=False, **QUIET)
    qm, qv = model.get_latent_representation(return_dist=True)
    types = sim.obs["cell_type"].astype(str).to_numpy()
    posterior_sd = np.sqrt(qv.mean(0).sum())
    separation = np.linalg.norm(qm[types == "type1"].mean(0) - qm[types == "type2"].mean(0)) / posterior_sd
    distances = ((qm[:, None, :] - qm[None, :, :]) ** 2).sum(-1)
    neighbours = np.argsort(distances, axis=1)[:, 1:16]
    purity = (types[neighbours] == types[:, None]).mean()
    assert separation > 0.2
    assert purity > 0.5  # chance is ~1/3


def test_splicing_weight_prior_is_in_the_loss(small_mdata):
    """The Gaussian prior on the splicing decoder weights adds ||W||² / (2 sd² n_cells) to the loss."""
    _setup(small_mdata)
    torch.manual_seed(0)
    with_prior = SPLICEVI(small_mdata, n_latent=4, splicing_weight_prior_sd=0.5)
    without = SPLICEVI(small_mdata, n_latent=4, splicing_weight_prior_sd=None)
    without.module.load_state_dict(with_prior.module.state_dict())
    with torch.no_grad():
        with_prior.module.z_decoder_splicing.weight.normal_()
        without.module.z_decoder_splicing.weight.copy_(with_prior.module.z_decoder_splicing.weight)
    tensors = next(iter(with_prior._data_loader(batch_size=32)))
    losses = []
    for model in (with_prior, without):
        model.module.eval()
        torch.manual_seed(1)
        _, _, out = model.module(tensors)
        losses.append(float(out.loss.detach()))
    weight = with_prior.module.z_decoder_splicing.weight.detach()
    expected = float(weight.pow(2).sum()) / (2 * 0.5**2 * small_mdata.n_obs)
    assert losses[0] - losses[1] == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="splicing_weight_prior_sd"):
        SPLICEVI(small_mdata, splicing_weight_prior_sd=0.0)


def test_h_hidden_dim_of_the_reference_api_is_accepted_with_a_warning(small_mdata):
    """The reference's per-junction network width does not exist here: accepted, said, and ignored."""
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch")
    with pytest.warns(UserWarning, match="h_hidden_dim has no effect"):
        with_width = SPLICEVI(small_mdata, h_hidden_dim=64)
    torch.manual_seed(0)
    assert {k: tuple(v.shape) for k, v in with_width.module.state_dict().items()} == {
        k: tuple(v.shape) for k, v in SPLICEVI(small_mdata).module.state_dict().items()
    }
