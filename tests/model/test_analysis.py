"""Analysis API of SPLICEVI: normalized outputs, DM posterior PSI, differential splicing/expression."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.model._analysis import _dm_posterior_mean
from splicevi.nn._observed import ObservedEntries
from splicevi.tl.metrics import ranking_quality

DELTA = 0.1


@pytest.fixture(scope="module")
def trained():
    """A tiny model on strongly planted data (3 types; types 1 and 2 differ only in splicing)."""
    warnings.filterwarnings("ignore")
    sim = simulate(
        n_cells=240,
        n_genes=60,
        n_events=50,
        n_types=3,
        n_batches=2,
        frac_ds_events=0.5,
        min_dpsi=0.4,
        observed_fraction=0.4,
        mean_event_reads=20,
        seed=0,
    )
    mdata = sim.to_mudata()
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=8, n_hidden=32, encoder_hidden_dim=32, code_dim=8)
    model.train(
        max_epochs=25,
        lr=1e-2,
        batch_size=128,
        early_stopping=False,
        n_epochs_kl_warmup=10,
        enable_progress_bar=False,
    )
    return sim, mdata, model


# ---------------------------------------------------------------- shapes and types
@pytest.mark.parametrize(
    "method", ["get_normalized_expression", "get_normalized_splicing", "get_normalized_splicing_DM"]
)
def test_normalized_shapes_and_types(trained, method):
    sim, mdata, model = trained
    fn = getattr(model, method)
    n_features = mdata["rna"].n_vars if method == "get_normalized_expression" else mdata["splicing"].n_vars
    names = mdata["rna"].var_names if method == "get_normalized_expression" else mdata["splicing"].var_names

    df = fn()
    assert isinstance(df, pd.DataFrame)
    assert df.shape == (mdata.n_obs, n_features)
    assert list(df.columns) == list(names) and list(df.index) == list(mdata.obs_names)

    arr = fn(return_numpy=True)
    assert isinstance(arr, np.ndarray) and arr.shape == (mdata.n_obs, n_features)
    np.testing.assert_allclose(arr, df.to_numpy(), rtol=1e-5)

    samples = fn(n_samples=3, return_mean=False)
    assert isinstance(samples, np.ndarray) and samples.shape == (3, mdata.n_obs, n_features)
    # Samples of the joint latent differ from each other.
    assert np.abs(samples[0] - samples[1]).max() > 0

    mean = fn(n_samples=3, return_mean=True, return_numpy=True)
    assert mean.shape == (mdata.n_obs, n_features)

    idx = [5, 1, 7]
    sub = fn(indices=idx)
    assert list(sub.index) == list(mdata.obs_names[idx])
    np.testing.assert_allclose(sub.to_numpy(), df.to_numpy()[idx], rtol=1e-5, atol=1e-7)

    subset = list(names[[3, 0, 10]])
    key = "gene_list" if method == "get_normalized_expression" else "junction_list"
    part = fn(**{key: subset})
    assert list(part.columns) == subset
    np.testing.assert_allclose(part.to_numpy(), df[subset].to_numpy(), rtol=1e-5, atol=1e-7)

    with pytest.raises(ValueError):
        fn(**{key: ["not-a-feature"]})

    # transform_batch: one batch (label), and the average over both.
    b0 = fn(transform_batch="batch0", return_numpy=True)
    b1 = fn(transform_batch="batch1", return_numpy=True)
    both = fn(transform_batch=["batch0", "batch1"], return_numpy=True)
    np.testing.assert_allclose(both, (b0 + b1) / 2, rtol=1e-5, atol=1e-7)
    if method != "get_normalized_splicing_DM":
        assert np.abs(b0 - b1).max() > 0
    with pytest.raises(ValueError):
        fn(transform_batch="nope")


def test_normalized_values_are_probabilities(trained):
    sim, mdata, model = trained
    expr = model.get_normalized_expression(return_numpy=True)
    np.testing.assert_allclose(expr.sum(axis=1), 1.0, rtol=1e-4)
    psi = model.get_normalized_splicing(return_numpy=True)
    dm = model.get_normalized_splicing_DM(return_numpy=True)
    codes = model.module.junc2atse.numpy()
    for values in (psi, dm):
        assert values.min() >= 0 and values.max() <= 1
        per_event = np.zeros((values.shape[0], codes.max() + 1))
        np.add.at(per_event.T, codes, values.T)
        np.testing.assert_allclose(per_event, 1.0, rtol=1e-4)


def test_dm_posterior_mean_hand_case():
    # Two cells, three junctions (ATSE 0 = junctions 0, 1; ATSE 1 = junction 2).
    p = torch.tensor([[0.5, 0.5, 0.2], [0.25, 0.75, 0.9]])
    obs = ObservedEntries(
        rows=torch.tensor([0, 0]),
        cols=torch.tensor([0, 1]),
        k=torch.tensor([3.0, 1.0]),
        n=torch.tensor([4.0, 4.0]),
        group=torch.tensor([0, 0]),
        group_row=torch.tensor([0]),
        group_event=torch.tensor([0]),
        n_cells=2,
    )
    conc = torch.tensor([2.0, 2.0, 5.0])
    out = _dm_posterior_mean(p, obs, conc, torch.arange(3))
    expected = torch.tensor([[(2 * 0.5 + 3) / 6, (2 * 0.5 + 1) / 6, 0.2], [0.25, 0.75, 0.9]])
    torch.testing.assert_close(out, expected)
    # Samples × cells × junctions, and a subset of requested junctions (junction 1 only).
    out3 = _dm_posterior_mean(p.expand(2, -1, -1), obs, conc, torch.arange(3))
    torch.testing.assert_close(out3[1], expected)
    col_pos = torch.tensor([-1, 0, -1])
    sub = _dm_posterior_mean(p[:, [1]], obs, conc[[1]], col_pos)
    torch.testing.assert_close(sub, expected[:, [1]])


def test_dm_matches_formula_on_model(trained):
    sim, mdata, model = trained
    spl = mdata["splicing"]
    p = model.get_normalized_splicing(return_numpy=True)
    dm = model.get_normalized_splicing_DM(return_numpy=True)
    c = model.module.splicing_concentration_per_junction().detach().numpy()
    k = spl.layers["cell_by_junction_matrix"].toarray()
    n = spl.layers["cell_by_cluster_matrix"].toarray()
    expected = (c * p + k) / (c + n)
    np.testing.assert_allclose(dm, expected, rtol=1e-4, atol=1e-6)
    unobserved = n == 0
    np.testing.assert_allclose(dm[unobserved], p[unobserved], rtol=1e-5)
    assert np.abs(dm - p)[~unobserved].max() > 1e-3


# ---------------------------------------------------------------- differential splicing
JUNCTION_COLUMNS = {
    "proba_ds",
    "is_ds_fdr",
    "bayes_factor",
    "pvalue",
    "qvalue",
    "log10_pvalue",
    "effect_size",
    "effect_se",
    "df",
    "emp_effect",
    "est_psi1",
    "est_psi2",
    "emp_psi1",
    "emp_psi2",
    "n_obs_group1",
    "n_obs_group2",
    "junction_id",
    "event_id",
    "gene_name",
}


def _truth(sim, t1, t2):
    dpsi = sim.true_dpsi(t1, t2)
    return dpsi.abs() > DELTA


def test_differential_splicing_ranks_planted_first(trained):
    sim, mdata, model = trained
    res = model.differential_splicing(groupby="cell_type", group1="type1", group2="type2", delta=DELTA)
    assert JUNCTION_COLUMNS <= set(res.columns)
    assert set(res.index) == set(mdata["splicing"].var_names)
    truth = _truth(sim, "type1", "type2").loc[res.index].to_numpy()
    assert truth.any()
    # The table's own order: its top rows are the planted junctions.
    n_top = 20
    assert truth[:n_top].mean() >= 0.9, truth[:n_top]
    own = ranking_quality(truth, -np.arange(len(res), dtype=float))
    assert own["auprc"] > 0.9, own
    # Sorted calls first, then by evidence: p-values non-decreasing within the calls and within
    # the rest (a strong but small change is not a call).
    called = res["is_ds_fdr"].to_numpy()
    assert called.sum() > 0 and not called[called.sum() :].any()
    lp = res["log10_pvalue"].to_numpy()
    assert (np.diff(lp[called]) >= 0).all() and (np.diff(lp[~called]) >= 0).all()
    # Every call (default fdr_method "bh_lfdr") is either a BH call whose change is at least delta
    # with confidence, or a posterior call (mean local FDR of the calls within the target).
    bh_call = (res["abs_dpsi_bound"].to_numpy() >= DELTA - 1e-9) & (res["qvalue"].to_numpy() <= 0.05)
    lfdr_call = res["lfdr_qvalue"].to_numpy() <= 0.05
    assert (bh_call | lfdr_call)[called].all()
    assert called[bh_call | lfdr_call].all()
    # Evidence resolution: the strongest calls are not tied at a probability of exactly 1.
    strong = res["bayes_factor"].to_numpy()[called]
    # (the two junctions of a two-junction ATSE mirror each other: compare one per ATSE).
    per_event = pd.Series(strong, index=res["event_id"].to_numpy()[called]).groupby(level=0).first()
    assert np.isfinite(strong).all() and np.unique(np.round(per_event, 6)).size == per_event.size
    # The sign of the estimated ΔPSI agrees with the planted ΔPSI on the called junctions.
    true_dpsi = sim.true_dpsi("type1", "type2").loc[res.index].to_numpy()
    assert (np.sign(res["effect_size"].to_numpy()[called]) == np.sign(true_dpsi[called])).mean() > 0.95
    # Observed statistics: pooled PSI only from observed entries, counts of observing cells.
    assert (res["n_obs_group1"] <= (mdata.obs["cell_type"] == "type1").sum()).all()
    np.testing.assert_allclose(res["emp_effect"], res["emp_psi1"] - res["emp_psi2"])
    np.testing.assert_allclose(res["effect_size"], res["est_psi1"] - res["est_psi2"], atol=1e-6)

    events = model.differential_splicing(
        groupby="cell_type", group1="type1", group2="type2", delta=DELTA, level="event"
    )
    assert {
        "event_id",
        "best_junction",
        "max_abs_dpsi",
        "proba_ds",
        "is_ds_fdr",
        "bayes_factor",
        "qvalue",
    } <= set(events.columns)
    assert len(events) == sim.events.shape[0]
    ev_truth = (
        sim.true_dpsi("type1", "type2").abs().groupby(sim.junctions["event_id"]).max().loc[events["event_id"]]
        > DELTA
    ).to_numpy()
    assert ev_truth[:10].mean() >= 0.9
    assert ranking_quality(ev_truth, -np.arange(len(events), dtype=float))["auprc"] > 0.9


def test_differential_splicing_null_contrast_calls_nothing(trained):
    sim, mdata, model = trained
    cells = np.nonzero(mdata.obs["cell_type"].to_numpy() == "type0")[0]
    rng = np.random.default_rng(1)
    rng.shuffle(cells)
    half = cells.size // 2
    res = model.differential_splicing(idx1=cells[:half], idx2=cells[half:], delta=DELTA, fdr_target=0.1)
    assert res["is_ds_fdr"].sum() <= 1
    assert res["pvalue"].min() > 1e-4  # not merely under the threshold: no strong evidence at all
    events = model.differential_splicing(idx1=cells[:half], idx2=cells[half:], level="event", fdr_target=0.1)
    assert events["is_ds_fdr"].sum() <= 1
    # Batch-only split of one type: no splicing differs between batches.
    batch = mdata.obs["batch"].astype(str).to_numpy()[cells]
    split = model.differential_splicing(
        idx1=cells[batch == "batch0"], idx2=cells[batch == "batch1"], fdr_target=0.1
    )
    assert split["is_ds_fdr"].sum() <= 1


def test_differential_splicing_one_vs_rest_is_calibrated(trained):
    sim, mdata, model = trained
    types = mdata.obs["cell_type"].astype(str).to_numpy()
    res = model.differential_splicing(groupby="cell_type", group1="type2", delta=DELTA, fdr_target=0.05)
    # Truth: type2 against the rest as the cells present (cell-count-weighted mean of types 0, 1).
    shares = pd.Series(types[types != "type2"]).value_counts(normalize=True)
    rest = sum(w * sim.junctions[f"true_psi_{t}"] for t, w in shares.items())
    truth = ((sim.junctions["true_psi_type2"] - rest).abs() > DELTA).loc[res.index].to_numpy()
    from splicevi.tl.metrics import call_quality

    quality = call_quality(truth, res["is_ds_fdr"])
    assert quality["n_calls"] >= 5 and quality["empirical_fdr"] <= 0.075, quality


def test_differential_splicing_options(trained, capfd):
    sim, mdata, model = trained
    common = dict(groupby="cell_type", group1="type1", group2="type2", silent=True)
    base = model.differential_splicing(**common)
    assert "Differential splicing" not in "".join(capfd.readouterr())  # silent: no progress bar
    dec = model.differential_splicing(norm_splicing_function="decoded", **common)
    assert JUNCTION_COLUMNS <= set(dec.columns)
    # The residual weights differ (reads vs effective reads), so do the estimates.
    assert not np.allclose(dec.loc[base.index, "effect_size"], base["effect_size"])
    van = model.differential_splicing(mode="vanilla", **common)
    # Vanilla mode: the Bayes factor is signed like the estimated change.
    strong = van[van["effect_size"].abs() > 0.05]
    assert len(strong) > 0
    assert (np.sign(strong["bayes_factor"]) == np.sign(strong["effect_size"])).all()
    bc = model.differential_splicing(batch_correction=True, **common)
    assert not np.allclose(bc.loc[base.index, "est_psi1"], base["est_psi1"])
    model.differential_splicing(groupby="cell_type", group1="type1", group2="type2", silent=False)
    assert "Differential splicing" in "".join(capfd.readouterr())
    sampled = model.differential_splicing(n_samples=3, **common)
    assert sampled["is_ds_fdr"].sum() > 0
    lean = model.differential_splicing(all_stats=False, **common)
    assert "emp_psi1" not in lean.columns
    rest = model.differential_splicing(groupby="cell_type", group1="type0")
    assert len(rest) == mdata["splicing"].n_vars
    every = model.differential_splicing(groupby="cell_type")
    assert set(every["group1"]) == {"type0", "type1", "type2"}
    # One pass serves every comparison: each equals its own call.
    alone = model.differential_splicing(groupby="cell_type", group1="type1")
    np.testing.assert_allclose(
        every[every["group1"] == "type1"].loc[alone.index, "log10_pvalue"], alone["log10_pvalue"]
    )
    with pytest.raises(ValueError):
        model.differential_splicing(groupby="cell_type", group1="type1", norm_splicing_function="lfc")
    with pytest.raises(ValueError):
        model.differential_splicing()
    with pytest.raises(ValueError, match="share"):
        model.differential_splicing(idx1=[0, 1, 2], idx2=[2, 3])
    with pytest.raises(ValueError, match="disjoint"):
        model.differential_splicing(groupby="cell_type", group1="type1", group2=["type1", "type2"])


def test_differential_expression(trained):
    sim, mdata, model = trained
    res = model.differential_expression(groupby="cell_type", group1="type0", group2="type1", silent=True)
    assert {"proba_de", "bayes_factor", "lfc_mean"} <= set(res.columns)
    assert set(res.index) == set(mdata["rna"].var_names)
    assert res["proba_de"].between(0, 1).all()
