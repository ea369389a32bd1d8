"""Clusters found on the same reads: read splitting, detection and the held-out-reads test."""

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
from splicevi.data.layers import event_codes
from splicevi.data.thinning import HELDOUT_LAYER, atse_overdispersion, split_reads, thin_counts
from splicevi.model._ds_clusters import fit_part_latent, groups_look_like_clusters, heldout_ds
from splicevi.tl.embedding import leiden

DELTA = 0.1


def _dm_counts(n_cells: int, reads: int, psi: float, conc: float, seed: int) -> sp.csr_matrix:
    """One ATSE of two junctions: each cell draws its own usage from Beta(c·psi, c·(1 − psi))."""
    rng = np.random.default_rng(seed)
    usage = rng.beta(conc * psi, conc * (1 - psi), size=n_cells)
    k1 = rng.binomial(reads, usage)
    return sp.csr_matrix(np.c_[k1, reads - k1].astype(np.float32))


# ---------------------------------------------------------------- split_reads
def test_split_reads_parts_sum_are_integer_and_reproducible(small_mdata):
    total = sp.csr_matrix(small_mdata["splicing"].layers["cell_by_junction_matrix"])
    held = split_reads(small_mdata, seed=7)
    assert small_mdata["splicing"].layers[HELDOUT_LAYER] is held
    fit = total - held
    assert np.all(held.data == np.round(held.data)) and held.data.min() >= 0
    assert fit.toarray().min() >= 0
    np.testing.assert_array_equal((fit + held).toarray(), total.toarray())
    share = held.sum() / total.sum()
    assert 0.4 < share < 0.6
    again = split_reads(small_mdata, seed=7)
    np.testing.assert_array_equal(again.toarray(), held.toarray())
    other = split_reads(small_mdata, seed=8)
    assert (other != held).nnz > 0
    assert small_mdata["splicing"].uns["splicevi_split"] == {
        "fraction": 0.5,
        "method": "dm",
        "seed": 8,
        "layer": "cell_by_junction_matrix",
        "concentration": "moments",
    }
    binom = split_reads(small_mdata, method="binomial", seed=7)
    np.testing.assert_array_equal((total - binom + binom).toarray(), total.toarray())


def test_dm_split_parts_are_independent_where_binomial_split_is_not():
    # Cells differ in their own junction usage (overdispersion) but not in mean PSI: the fit and
    # held-out PSI of a cell must be uncorrelated for the split to be usable after clustering.
    k = _dm_counts(6000, 30, psi=0.4, conc=4.0, seed=0)
    codes = np.array([0, 0])
    rho = atse_overdispersion(k, codes)
    assert rho[0] == pytest.approx(1 / 5, abs=0.03)  # moments recover c = 4

    def corr(held):
        fit = (k - held).toarray()
        held = held.toarray()
        ok = (fit.sum(1) > 0) & (held.sum(1) > 0)
        return np.corrcoef(fit[ok, 0] / fit[ok].sum(1), held[ok, 0] / held[ok].sum(1))[0, 1]

    assert abs(corr(thin_counts(k, codes, method="dm", seed=1))) < 0.05
    assert corr(thin_counts(k, codes, method="binomial", seed=1)) > 0.3


def test_split_reads_rejects_bad_input(small_mdata):
    with pytest.raises(ValueError, match="fraction"):
        split_reads(small_mdata, fraction=1.0)
    with pytest.raises(ValueError, match="method"):
        split_reads(small_mdata, method="poisson")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        split_reads(small_mdata, layer="nope")
    spl = small_mdata["splicing"]
    spl.layers["frac"] = spl.layers["cell_by_junction_matrix"] * 0.5
    with pytest.raises(ValueError, match="non-negative integers"):
        split_reads(small_mdata, layer="frac")


# ---------------------------------------------------------------- a null model
@pytest.fixture(scope="module")
def null_model():
    """Splicing-only data with no splicing difference at all, and a short model of it."""
    warnings.filterwarnings("ignore")
    sim = simulate(
        n_cells=400,
        n_genes=20,
        n_events=60,
        n_types=3,
        frac_ds_events=0.0,
        observed_fraction=0.3,
        mean_event_reads=15,
        dm_concentration=8.0,
        seed=5,
    )
    mdata = sim.to_mudata(with_expression=False)
    mdata.obs["batch"] = "b0"
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    # Every random stream training touches (the train/validation split included), so the model
    # does not depend on which tests ran before.
    scvi.settings.seed = 0
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=6, n_hidden=32, encoder_hidden_dim=32, code_dim=8)
    model.train(
        max_epochs=25,
        lr=1e-2,
        batch_size=128,
        early_stopping=False,
        n_epochs_kl_warmup=10,
        enable_progress_bar=False,
    )
    return mdata, model


def _clusters(latent: np.ndarray, resolution: float) -> np.ndarray:
    emb = ad.AnnData(np.zeros((latent.shape[0], 1), dtype=np.float32))
    emb.obsm["X"] = latent
    sc.pp.neighbors(emb, n_neighbors=15, use_rep="X", random_state=0)
    return np.asarray(leiden(emb.obsp["connectivities"], resolution, 0)).astype(str)


def test_heldout_ds_without_heldout_reads_says_what_to_do(null_model):
    mdata, model = null_model
    spl = mdata["splicing"]
    spl.layers.pop(HELDOUT_LAYER, None)
    with pytest.raises(ValueError, match=r"split_reads\(mdata.*fit_part_latent.*design='labels'"):
        heldout_ds(model, mdata, np.arange(100), np.arange(100, 400), delta=DELTA, fdr_target=0.05)


def test_detection_flags_latent_clusters_not_random_labels(null_model):
    mdata, model = null_model
    labels = _clusters(model.get_latent_representation(), 1.0)
    biggest = pd.Series(labels).value_counts().index[0]
    c1 = np.nonzero(labels == biggest)[0]
    flagged, score = groups_look_like_clusters(model, mdata, c1, np.setdiff1d(np.arange(mdata.n_obs), c1))
    assert flagged and score > 0.8
    perm = np.random.default_rng(0).permutation(mdata.n_obs)
    flagged, score = groups_look_like_clusters(model, mdata, perm[:150], perm[150:])
    assert not flagged and score < 0.7
    # Clusters of the fit part's latent (the valid recipe) are recognised too.
    split_reads(mdata, seed=0)
    labels = _clusters(fit_part_latent(model, mdata), 1.0)
    c1 = np.nonzero(labels == pd.Series(labels).value_counts().index[0])[0]
    flagged, score = groups_look_like_clusters(model, mdata, c1, np.setdiff1d(np.arange(mdata.n_obs), c1))
    assert flagged and score > 0.8
    flagged, score = groups_look_like_clusters(model, mdata, perm[:150], perm[150:])
    assert not flagged and score < 0.7


def test_clusters_of_the_fit_reads_tested_on_heldout_reads_make_no_false_calls(null_model):
    mdata, model = null_model
    split_reads(mdata, seed=0)
    latent = fit_part_latent(model, mdata)
    assert not np.allclose(latent, model.get_latent_representation())  # the fit part is what is encoded
    contrasts, with_calls, n_calls = 0, 0, 0
    for resolution in (0.5, 1.5):
        labels = _clusters(latent, resolution)
        for g in np.unique(labels):
            c1 = np.nonzero(labels == g)[0]
            c2 = np.nonzero(labels != g)[0]
            if c1.size < 10:
                continue
            table = heldout_ds(model, mdata, c1, c2, delta=DELTA, fdr_target=0.05)
            assert table.attrs["splicevi_ds"]["design"] == "clusters"
            assert (table["test"] == "held-out reads (count splitting)").all()
            assert table["effect_size"].abs().max() <= 1.0
            contrasts += 1
            calls = int(table["is_ds_fdr"].sum())
            with_calls += calls > 0
            n_calls += calls
    assert contrasts >= 4
    assert with_calls <= max(1, contrasts // 10), (with_calls, contrasts, n_calls)


def _two_splice_types(sim_kwargs: dict, train_kwargs: dict):
    """Two types that differ only in splicing (no gene counts), a small model, the reads split.

    Returns the simulation, the MuData, the model and the two types' cell indices.
    """
    warnings.filterwarnings("ignore")
    sim = simulate(n_genes=20, n_types=2, **sim_kwargs)
    mdata = sim.to_mudata(with_expression=False)
    mdata.obs["batch"] = "b0"
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=4, n_hidden=32, encoder_hidden_dim=32, code_dim=8)
    model.train(batch_size=128, early_stopping=False, enable_progress_bar=False, **train_kwargs)
    split_reads(mdata, seed=0)
    types = mdata.obs["cell_type"].astype(str).to_numpy()
    return sim, mdata, model, np.nonzero(types == "type0")[0], np.nonzero(types == "type1")[0]


def test_heldout_ds_finds_real_differences():
    # Power: two types that differ only in splicing, clusters found on the fit reads.
    sim, mdata, model, c1, c2 = _two_splice_types(
        dict(
            n_cells=300,
            n_events=40,
            frac_ds_events=0.5,
            min_dpsi=0.5,
            observed_fraction=0.5,
            mean_event_reads=20,
            seed=1,
        ),
        dict(max_epochs=25, lr=1e-2, n_epochs_kl_warmup=10),
    )
    table = heldout_ds(model, mdata, c1, c2, delta=DELTA, fdr_target=0.05, level="event")
    assert table.index.name == "event_id"
    truth = sim.events["is_ds"].reindex(table.index).to_numpy(dtype=bool)
    called = table["is_ds_fdr"].to_numpy(dtype=bool)
    assert called[truth].mean() > 0.5
    assert (called & ~truth).sum() <= 1
    codes, _ = event_codes(mdata["splicing"].var["event_id"])
    assert len(table) == codes.max() + 1


def test_readme_recipe_for_own_clusters_runs(null_model):
    """The README's recipe (split, cluster the fit part) runs as written; its clusters test clean."""
    import re
    from pathlib import Path

    mdata, model = null_model
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "fit_part_latent" in b)
    # The last line calls the design dispatcher of differential_splicing; its held-out path is run
    # directly below.
    # The data here are splicing-only: the whole block, DE included, runs in tests/test_de_clusters.py.
    code = "\n".join(
        line
        for line in block.splitlines()
        if "differential_splicing" not in line and "differential_expression" not in line
    )
    assert "differential_splicing" in block and 'design="clusters"' in block
    namespace = {"mdata": mdata, "model": model}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the point of the test
    labels = mdata.obs["leiden_fit"].astype(str).to_numpy()
    assert np.unique(labels).size >= 2
    c1 = np.nonzero(labels == labels[0])[0]
    table = heldout_ds(
        model, mdata, c1, np.setdiff1d(np.arange(mdata.n_obs), c1), delta=DELTA, fdr_target=0.05
    )
    assert table["is_ds_fdr"].sum() == 0


# ---------------------------------------------------------------- the workflow's path (CLI)
def test_cluster_cli_clusters_the_fit_part_and_stores_heldout_reads(tmp_path):
    """`splicevi cluster --model`: split, cluster the fit part's latent, keep the held-out reads for ds."""
    import mudata as md

    from splicevi.cli._common import load_model, read_mudata
    from splicevi.cli.main import main

    data = tmp_path / "data.h5mu"
    simulate(
        n_cells=120, n_genes=20, n_events=20, n_types=2, observed_fraction=0.4, seed=2
    ).to_mudata().write(data)
    model_dir, emb = tmp_path / "model", tmp_path / "embedding.h5ad"
    assert (
        main(
            [
                "train",
                "--mdata",
                str(data),
                "--model-kwargs",
                '{"n_latent": 3, "n_hidden": 16}',
                "--max-epochs",
                "3",
                "--no-early-stopping",
                "--threads",
                "1",
                "--out-model",
                str(model_dir),
                "--out-history",
                str(tmp_path / "h.tsv"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "embed",
                "--mdata",
                str(data),
                "--model",
                str(model_dir),
                "--n-neighbors",
                "10",
                "--threads",
                "1",
                "--out",
                str(emb),
            ]
        )
        == 0
    )
    out = tmp_path / "splicevi.h5mu"
    args = [
        "cluster",
        "--mdata",
        str(data),
        "--embedding",
        str(emb),
        "--out",
        str(out),
        "--out-cells",
        str(tmp_path / "cells.tsv"),
    ]
    assert main([*args, "--model", str(model_dir), "--heldout-fraction", "1.5"]) != 0
    assert not out.exists()
    assert main([*args, "--model", str(model_dir)]) == 0
    result = md.read_h5mu(out)
    spl = result["splicing"]
    held = sp.csr_matrix(spl.layers[HELDOUT_LAYER])
    total = sp.csr_matrix(spl.layers["cell_by_junction_matrix"])
    assert (total - held).toarray().min() >= 0 and 0 < held.sum() < total.sum()
    assert result.uns["splicevi_provenance"]["cluster"]["reads"] == "fit part"
    # The gene counts are split too (negative-binomial thinning), for `splicevi de`.
    genes = sp.csr_matrix(result["rna"].X)
    held_genes = sp.csr_matrix(result["rna"].layers["heldout_gene_counts"])
    assert (genes - held_genes).toarray().min() >= 0 and 0 < held_genes.sum() < genes.sum()
    assert result["rna"].uns["splicevi_split"]["method"] == "nb"
    assert "X_splicevi_fit" in result.obsm and "X_umap" in result.obsm
    # ds can test the written clusters on the held-out reads.
    mdata = read_mudata(out)
    model = load_model(model_dir, mdata)
    labels = mdata.obs["leiden"].astype(str).to_numpy()
    c1 = np.nonzero(labels == labels[0])[0]
    table = heldout_ds(
        model, mdata, c1, np.setdiff1d(np.arange(mdata.n_obs), c1), delta=DELTA, fdr_target=0.05
    )
    assert len(table) == spl.n_vars
    # de tests the same clusters on the held-out gene counts (the default design picks it) and logs why.
    de_out = tmp_path / "de.tsv"
    assert (
        main(["de", "--mdata", str(out), "--model", str(model_dir), "--threads", "1", "--out", str(de_out)])
        == 0
    )
    de = pd.read_csv(de_out, sep="\t")
    assert set(de["design"]) == {"clusters"} and de["test"].str.contains("held-out gene counts").all()
    assert {"lfc_mean", "pvalue", "qvalue", "is_de_fdr", "gene_name"} <= set(de.columns)


def test_heldout_reads_rule_adds_power_at_droplet_coverage(monkeypatch):
    # Two types differing only in splicing, a few reads per cell and ATSE: the reads-only
    # quasi-binomial test of the held-out reads (READS_RULE) finds true junctions that the
    # cell-level estimator alone misses, without false ones.
    from splicevi.model import _ds_clusters

    sim, mdata, model, c1, c2 = _two_splice_types(
        dict(
            n_cells=1000,
            n_events=120,
            frac_ds_events=0.3,
            observed_fraction=0.03,
            mean_event_reads=2,
            seed=2,
        ),
        dict(max_epochs=5),
    )
    names = mdata["splicing"].var_names
    truth = (sim.true_dpsi("type0", "type1").abs() > DELTA).loc[names].to_numpy()

    def calls():
        t = heldout_ds(model, mdata, c1, c2, delta=DELTA, fdr_target=0.05)
        return t["is_ds_fdr"].reindex(names).to_numpy(dtype=bool), t

    with_reads, table = calls()
    assert {"reads_qvalue", "reads_abs_dpsi_bound", "reads_interval_qvalue"} <= set(table.columns)
    monkeypatch.setattr(_ds_clusters, "READS_RULE", False)
    without, _ = calls()
    # Measured: 23 true junctions with the rule, 12 without, 1 false (of 86 true).
    found, before = int((with_reads & truth).sum()), int((without & truth).sum())
    assert found >= 1.5 * before and found >= 15, (found, before)
    assert (with_reads & ~truth).sum() <= 2
