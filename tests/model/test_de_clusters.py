"""Differential expression of clusters found on the same counts: gene-count thinning and the held-out test."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
import scvi
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.thinning import (
    HELDOUT_GENE_LAYER,
    HELDOUT_LAYER,
    gene_inverse_dispersion,
    split_data,
    split_genes,
    split_reads,
    thin_gene_counts,
)
from splicevi.stats.heldout_de import heldout_de_test


def _nb_counts(n_cells: int, theta: np.ndarray, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Negative-binomial gene counts: one expression profile, cell depths varying (log-normal)."""
    rng = np.random.default_rng(seed)
    depth = rng.lognormal(0.0, 0.4, n_cells)
    rate = np.exp(rng.normal(1.5, 0.8, theta.size))
    mean = np.outer(depth, rate)
    return sp.csr_matrix(rng.poisson(rng.gamma(theta, mean / theta)).astype(np.float32)), depth


# ---------------------------------------------------------------- thinning
def test_nb_thinning_gives_independent_parts_where_binomial_thinning_does_not():
    theta = np.array([0.5, 1.0, 3.0])
    x, depth = _nb_counts(20_000, theta, seed=0)

    def corr(held):
        fit = (x - held).toarray() / depth[:, None]
        held = held.toarray() / depth[:, None]
        return np.array([np.corrcoef(fit[:, g], held[:, g])[0, 1] for g in range(theta.size)])

    nb = corr(thin_gene_counts(x, method="nb", theta=theta, seed=1))
    binomial = corr(thin_gene_counts(x, method="binomial", seed=1))
    assert np.all(np.abs(nb) < 0.03), nb
    assert np.all(binomial > 0.2), binomial


def test_gene_inverse_dispersion_recovers_theta_across_depths():
    theta = np.exp(np.linspace(np.log(0.3), np.log(30.0), 40))
    x, _ = _nb_counts(5000, theta, seed=2)
    est = gene_inverse_dispersion(x)
    ratio = est / theta
    assert np.median(ratio) == pytest.approx(1.0, abs=0.1)
    assert np.all((ratio[:30] > 0.7) & (ratio[:30] < 1.4)), ratio  # the overdispersed ones
    # Poisson counts: no excess variance, the upper bound (binomial thinning).
    pois = sp.csr_matrix(np.random.default_rng(0).poisson(5.0, size=(2000, 3)).astype(np.float32))
    assert np.all(gene_inverse_dispersion(pois) > 50)


def test_split_data_splits_both_modalities_from_one_seed(small_mdata):
    mdata = small_mdata
    genes = sp.csr_matrix(mdata["rna"].X)
    held = split_data(mdata, seed=3)
    assert set(held) == {"splicing", "rna"}
    g = mdata["rna"].layers[HELDOUT_GENE_LAYER]
    assert g is held["rna"]
    assert np.all(g.data == np.round(g.data)) and (genes - g).toarray().min() >= 0
    assert 0.4 < g.sum() / genes.sum() < 0.6
    assert mdata["rna"].uns["splicevi_split"]["seed"] == 3
    assert mdata["rna"].uns["splicevi_split"]["method"] == "nb"
    # The junction split is that of split_reads with the same seed (adding genes changes nothing there).
    junctions = mdata["splicing"].layers[HELDOUT_LAYER].copy()
    np.testing.assert_array_equal(split_reads(mdata, seed=3).toarray(), junctions.toarray())
    again = split_data(mdata, seed=3)
    np.testing.assert_array_equal(again["rna"].toarray(), g.toarray())
    assert (split_data(mdata, seed=4)["rna"] != g).nnz > 0
    assert split_data(mdata, method="binomial", seed=3)["rna"] is mdata["rna"].layers[HELDOUT_GENE_LAYER]
    assert mdata["rna"].uns["splicevi_split"]["method"] == "binomial"


def test_split_genes_rejects_bad_input(small_mdata):
    with pytest.raises(ValueError, match="fraction"):
        split_genes(small_mdata, fraction=0.0)
    with pytest.raises(ValueError, match="method"):
        split_genes(small_mdata, method="dm")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        split_genes(small_mdata, layer="nope")
    with pytest.raises(ValueError, match="one positive value per gene"):
        split_genes(small_mdata, theta=np.ones(3))
    small_mdata["rna"].layers["frac"] = small_mdata["rna"].X * 0.5
    with pytest.raises(ValueError, match="gene counts must be non-negative integers"):
        split_genes(small_mdata, layer="frac")


# ---------------------------------------------------------------- the test itself
def test_heldout_de_test_keeps_its_level_on_random_groups_and_finds_real_changes():
    theta = np.exp(np.random.default_rng(3).uniform(np.log(0.3), np.log(30.0), 200))
    x, _ = _nb_counts(600, theta, seed=4)
    genes = pd.Index([f"g{i}" for i in range(200)])
    rng = np.random.default_rng(5)
    with_calls = 0
    for n1 in (10, 30, 100, 300) * 3:
        perm = rng.permutation(600)
        table = heldout_de_test(x, perm[:n1], perm[n1:], genes, delta=0.25)
        with_calls += bool(table["is_de_fdr"].any())
        assert table["pvalue"].between(0, 1).all()
    assert with_calls <= 1
    # A real 3-fold change of 20 mid-expressed genes in 100 cells is found. It raises those cells'
    # library sizes by ~15%, so every other gene's normalised expression truly drops by ~0.2 (log2):
    # calls need |log2 FC| ≥ 0.5 here.
    y = x.toarray()
    planted = np.argsort(y.mean(axis=0))[60:80]
    y[:100, planted] = rng.poisson(3 * y[:100, planted])
    table = heldout_de_test(sp.csr_matrix(y), np.arange(100), np.arange(100, 600), genes, delta=0.5)
    called = table["is_de_fdr"].to_numpy()
    truth = np.isin(np.arange(200), planted)
    assert called[truth].mean() > 0.7
    assert called[~truth].sum() / called.sum() <= 0.1  # empirical FDR (target 0.05; one table)
    assert (table["lfc_mean"].to_numpy()[truth] > 0.5).all()


# ---------------------------------------------------------------- the model's DE of clusters
@pytest.fixture(scope="module")
def null_expression_model():
    """Genes and junctions with no difference at all (one expression profile), and a short model of them."""
    warnings.filterwarnings("ignore")
    sim = simulate(
        n_cells=400,
        n_genes=120,
        n_events=40,
        n_types=2,
        frac_ds_events=0.0,
        frac_de_genes=0.0,
        observed_fraction=0.3,
        mean_library=3000.0,
        seed=11,
    )
    mdata = sim.to_mudata()
    mdata.obs["batch"] = "b0"
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    scvi.settings.seed = 0
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=6, n_hidden=32, encoder_hidden_dim=32, h_hidden_dim=16, code_dim=8)
    model.train(
        max_epochs=25,
        lr=1e-2,
        batch_size=128,
        early_stopping=False,
        n_epochs_kl_warmup=10,
        enable_progress_bar=False,
    )
    return mdata, model


def _leiden(mdata, latent: np.ndarray, resolution: float, key: str) -> None:
    """scanpy's Leiden on a latent, recorded in ``uns[key]`` as a clustering (as users run it)."""
    emb = ad.AnnData(
        np.zeros((latent.shape[0], 1), dtype=np.float32), obs=pd.DataFrame(index=mdata.obs_names)
    )
    emb.obsm["X"] = latent
    sc.pp.neighbors(emb, n_neighbors=15, use_rep="X", random_state=0)
    sc.tl.leiden(emb, resolution=resolution, key_added=key, random_state=0, flavor="leidenalg")
    mdata.obs[key] = emb.obs[key].to_numpy()
    mdata.uns[key] = dict(emb.uns[key])


def test_default_de_of_null_clusters_tests_held_out_counts_and_makes_no_calls(null_expression_model):
    from splicevi.model._ds_clusters import fit_part_latent

    mdata, model = null_expression_model
    for layer in (HELDOUT_GENE_LAYER,):
        mdata["rna"].layers.pop(layer, None)
    _leiden(mdata, model.get_latent_representation(), 1.0, "leiden_all")
    # A clustering of these counts with nothing held out: refused, saying what to do.
    with pytest.raises(ValueError, match=r"double dipping.*split_data\(mdata.*design='labels'"):
        model.differential_expression(groupby="leiden_all", silent=True)
    split_data(mdata, seed=0)
    latent = fit_part_latent(model, mdata)
    contrasts, with_calls = 0, 0
    for resolution in (0.5, 1.0, 2.0):
        _leiden(mdata, latent, resolution, "leiden_fit")
        table = model.differential_expression(groupby="leiden_fit", silent=True)  # the default: design auto
        info = table.attrs["splicevi_de"]
        assert info["design"] == "clusters" and "clustering" in info["reason"]
        assert set(table["design"]) == {"clusters"}
        assert table["test"].str.contains("held-out gene counts").all()
        for _, part in table.groupby("comparison"):
            contrasts += 1
            with_calls += bool(part["is_de_fdr"].any())
    assert contrasts >= 10
    assert with_calls <= contrasts // 10, (with_calls, contrasts)


def test_readme_recipe_tests_ds_and_de_of_own_clusters_on_held_out_counts(null_expression_model):
    """The README's recipe for clusters of your own runs as written, DS and DE included."""
    import re
    from pathlib import Path

    mdata, model = null_expression_model
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "fit_part_latent" in b)
    assert "split_data" in block and "differential_expression" in block
    namespace = {"mdata": mdata, "model": model}
    exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the point of the test
    de, ds = namespace["de"], namespace["ds"]
    assert de.attrs["splicevi_de"]["design"] == "clusters"
    assert ds.attrs["splicevi_ds"]["design"] == "clusters"
    with_calls = [bool(part["is_de_fdr"].any()) for _, part in de.groupby("comparison")]
    assert len(with_calls) >= 2 and sum(with_calls) <= max(1, len(with_calls) // 10)
