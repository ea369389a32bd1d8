"""Regression bars of the latents against simple baselines (small regimes, seconds each).

The full grid lives in ``bench/quality.py``; these two cases are the smallest that failed before the
splicing encoder saw centred PSI (splicing-only ARI ≈ 0 where the SVD of centred PSI reaches ~0.5,
and a joint latent far below the expression latent with the mixing of the time).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import adjusted_rand_score

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.layers import centred_psi, event_codes, junction_mean_psi

from conftest import QUIET

#: Every test here trains to convergence on simulated data.
pytestmark = pytest.mark.slow


def _ari(latent: np.ndarray, labels: np.ndarray) -> float:
    k = np.unique(labels).size
    return adjusted_rand_score(labels, KMeans(k, n_init=10, random_state=0).fit_predict(latent))


def _svd_ari(sim) -> float:
    codes, _ = event_codes(sim.junctions["event_id"])
    svd = TruncatedSVD(10, random_state=0).fit_transform(centred_psi(sim.junction_counts, codes))
    return _ari(svd, sim.obs["cell_type"].astype(str).to_numpy())


def _train(mdata, epochs: int):
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=10)
    model.train(max_epochs=epochs, early_stopping=False, **QUIET)
    return model


def test_centred_psi_is_psi_minus_junction_mean():
    sim = simulate(n_cells=50, n_genes=20, n_events=15, seed=1)
    codes, _ = event_codes(sim.junctions["event_id"])
    centred = centred_psi(sim.junction_counts, codes).tocoo()
    from splicevi.data.layers import splicing_layers

    layers = splicing_layers(sim.junction_counts, codes)
    psi = layers["junc_ratio"].toarray()
    observed = layers["psi_mask"].toarray() > 0
    means = np.array(
        [psi[observed[:, j], j].mean() if observed[:, j].any() else 0.5 for j in range(psi.shape[1])]
    )
    np.testing.assert_allclose(junction_mean_psi(sim.junction_counts, codes), means, rtol=1e-5)
    dense = np.zeros_like(psi)
    dense[centred.row, centred.col] = centred.data
    np.testing.assert_allclose(dense, np.where(observed, psi - means[None, :], 0.0), atol=1e-6)
    # Shrinkage towards the centre: (psi - c) * n / (n + kappa).
    n = layers["cell_by_cluster_matrix"].toarray()
    shrunk = centred_psi(sim.junction_counts, codes, prior_strength=3.0).toarray()
    np.testing.assert_allclose(
        shrunk, np.where(observed, (psi - means) * n / np.maximum(n + 3.0, 1e-9), 0), atol=1e-6
    )


def test_splicing_only_latent_reaches_the_svd_baseline():
    """Many ATSEs, few of them differential: the splicing latent must carry what the SVD carries."""
    sim = simulate(
        n_cells=600,
        n_genes=100,
        n_events=600,
        n_types=4,
        n_batches=2,
        frac_ds_events=0.15,
        observed_fraction=0.15,
        seed=5,
    )
    baseline = _svd_ari(sim)
    assert baseline > 0.2  # the case is informative
    model = _train(sim.to_mudata(with_expression=False), epochs=25)
    ari = _ari(model.get_latent_representation(), sim.obs["cell_type"].astype(str).to_numpy())
    assert ari >= baseline - 0.05, (ari, baseline)


def test_joint_latent_not_below_the_best_single_modality():
    """A splicing modality with weak signal must not drown the expression signal in the joint."""
    sim = simulate(
        n_cells=600,
        n_genes=200,
        n_events=400,
        n_types=4,
        n_batches=2,
        frac_ds_events=0.1,
        observed_fraction=0.05,
        seed=6,
    )
    model = _train(sim.to_mudata(), epochs=25)
    labels = sim.obs["cell_type"].astype(str).to_numpy()
    single = {
        m: _ari(model.get_latent_representation(modality=m), labels) for m in ("expression", "splicing")
    }
    joint = _ari(model.get_latent_representation(), labels)
    assert max(single.values()) > 0.3
    assert joint >= max(single.values()) - 0.05, (joint, single)


@pytest.mark.parametrize("pca", [True, False])
def test_partial_encoder_starts_at_the_svd_of_centred_psi(small_mdata, pca):
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch")
    model = SPLICEVI(small_mdata, n_latent=6, code_dim=4, initialize_embeddings_from_pca=pca)
    spl = small_mdata["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    k = spl.layers["cell_by_junction_matrix"]
    center = junction_mean_psi(k, codes)
    np.testing.assert_allclose(model.module.psi_center.numpy(), center, rtol=1e-5)
    top = TruncatedSVD(1, random_state=0).fit(centred_psi(k, codes, center)).components_[0]
    first = model.module.z_encoder_splicing.feature_embedding.detach().numpy()[:, 0]
    cosine = abs(first @ top) / (np.linalg.norm(first) * np.linalg.norm(top))
    if pca:
        assert cosine > 0.99
    else:
        assert cosine < 0.5


def test_svd_init_on_a_cell_subset_keeps_the_centre_of_all_cells(small_mdata, monkeypatch):
    import splicevi.model._splicevi as model_module

    monkeypatch.setattr(model_module, "SVD_INIT_MAX_CELLS", small_mdata.n_obs // 2)
    SPLICEVI.setup_mudata(small_mdata, batch_key="batch")
    model = SPLICEVI(small_mdata, n_latent=6, code_dim=4)
    spl = small_mdata["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    k = spl.layers["cell_by_junction_matrix"]
    np.testing.assert_allclose(model.module.psi_center.numpy(), junction_mean_psi(k, codes), rtol=1e-5)
    top = TruncatedSVD(1, random_state=0).fit(centred_psi(k, codes)).components_[0]
    first = model.module.z_encoder_splicing.feature_embedding.detach().numpy()[:, 0]
    assert abs(first @ top) / (np.linalg.norm(first) * np.linalg.norm(top)) > 0.8
