"""Groups that are unions of samples: pseudobulk DS and DE over samples, the simulated cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from splicevi.data import simulate
from splicevi.stats import pseudobulk as pb
from splicevi.stats.differential import bh_qvalues

DELTA = 0.1


def _cohort(n_samples, conc, frac=0.0, seed=0, n_events=300):
    return simulate(
        n_cells=600,
        n_genes=80,
        n_events=n_events,
        n_types=2,
        observed_fraction=0.3,
        n_samples=n_samples,
        sample_concentration=conc,
        frac_condition_events=frac,
        seed=seed,
    )


def _dm_calls(sim, quasi=True):
    """Junction calls of the DM test (ATSE q ≤ 0.05 and |per-sample ΔPSI| ≥ DELTA), treated vs control."""
    counts, names = pb.pseudobulk(sim.junction_counts, sim.obs["sample"].astype(str).to_numpy())
    cond = sim.obs.groupby("sample", observed=True)["condition"].first().astype(str).reindex(names).to_numpy()
    group = cond == "treated"
    codes = pd.factorize(sim.junctions["event_id"])[0]
    res = pb.dm_glm_test(counts, codes, group, quasi=quasi)
    q = bh_qvalues(res.log_pvalue)[np.searchsorted(res.atse, codes)]
    welch = pb.welch_test(counts, pb.atse_totals(counts, codes), group)
    return (q <= 0.05) & (np.abs(welch.effect) >= DELTA), res, welch


def _pooled_calls(sim):
    """The cells-as-units peer: two-proportion z-test on pooled reads (BH), |pooled ΔPSI| ≥ DELTA."""
    k = sim.junction_counts.toarray()
    codes = pd.factorize(sim.junctions["event_id"])[0]
    n = pb.atse_totals(k, codes)
    t = sim.obs["condition"].astype(str).to_numpy() == "treated"
    k1, n1, k2, n2 = k[t].sum(0), n[t].sum(0), k[~t].sum(0), n[~t].sum(0)
    p1, p2 = k1 / np.maximum(n1, 1), k2 / np.maximum(n2, 1)
    pool = (k1 + k2) / np.maximum(n1 + n2, 1)
    z = (p1 - p2) / np.sqrt(
        np.maximum(pool * (1 - pool) * (1 / np.maximum(n1, 1) + 1 / np.maximum(n2, 1)), 1e-12)
    )
    from scipy import stats

    q = bh_qvalues(stats.norm.logsf(np.abs(z)) + np.log(2))
    return (q <= 0.05) & (np.abs(p1 - p2) >= DELTA)


def test_simulated_samples_vary_and_default_output_is_unchanged():
    plain = simulate(n_cells=100, n_genes=30, n_events=20, seed=4)
    again = simulate(
        n_cells=100, n_genes=30, n_events=20, seed=4, sample_concentration=3.0
    )  # no samples: unused
    assert (plain.junction_counts != again.junction_counts).nnz == 0
    assert "sample" not in plain.obs and "true_dpsi_condition" not in plain.junctions
    sim = _cohort(4, 10.0)
    assert sorted(sim.obs["sample"].unique()) == ["sample1", "sample2", "sample3", "sample4"]
    assert set(sim.obs.groupby("sample", observed=True)["condition"].nunique()) == {1}
    # donors differ from their type's PSI; no condition effect was planted
    assert np.abs(sim.sample_psi[0] - sim.type_psi).mean() > 0.03
    assert not sim.junctions["is_condition_ds"].any()


def test_null_condition_with_donor_variation_makes_few_calls_with_samples_as_units():
    sim = _cohort(4, 10.0)  # 2 donors vs 2 donors, strong donor variation, no condition effect
    calls, res, _ = _dm_calls(sim)
    assert res.testable.sum() > 200
    assert calls.sum() <= 3, calls.sum()
    # cells as units read donor variation as a condition effect
    assert _pooled_calls(sim).sum() >= 10 * max(int(calls.sum()), 1)


def test_planted_condition_effect_is_found():
    sim = _cohort(6, 30.0, frac=0.2, seed=1)
    calls, _, _ = _dm_calls(sim)
    truth = np.abs(sim.junctions["true_dpsi_condition"].to_numpy()) > DELTA
    assert truth.sum() > 40
    assert (calls & truth).sum() >= 0.4 * truth.sum()
    assert (calls & ~truth).sum() <= 0.15 * max(calls.sum(), 1)


def test_dm_fit_recovers_concentration_and_is_calibrated_on_dm_data():
    rng = np.random.default_rng(0)
    n_atse, n_samples = 400, 8
    p = rng.dirichlet([2.0, 2.0, 2.0], size=n_atse)
    conc = 50.0
    counts = np.zeros((n_samples, 3 * n_atse))
    for s in range(n_samples):
        q = rng.gamma(p * conc)
        q /= q.sum(1, keepdims=True)
        counts[s] = np.concatenate([rng.multinomial(200, qi) for qi in q])
    codes = np.repeat(np.arange(n_atse), 3)
    group = np.arange(n_samples) < 4
    res = pb.dm_glm_test(counts, codes, group)
    assert 25 < np.median(res.concentration_mle) < 100
    assert np.mean(res.pvalue < 0.05) < 0.08  # calibrated on this null
    # the quasi-likelihood layer corrects the optimism of a concentration fitted on 8 samples
    assert 1.0 <= np.median(res.dispersion) < 2.0


def test_samples_nested_in_groups():
    from splicevi.model._ds_samples import samples_nested_in_groups

    samples = np.array(["a", "a", "b", "b", "c", "c", "d", "d"], dtype=object)
    assert samples_nested_in_groups(samples, np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7]))
    assert not samples_nested_in_groups(samples, np.array([0, 2, 4]), np.array([1, 3, 5]))  # shared samples
    assert not samples_nested_in_groups(
        samples, np.array([0, 1]), np.array([4, 5, 6, 7])
    )  # one sample in group 1
    assert samples_nested_in_groups(samples, np.array([0, 1]), np.array([4, 5, 6, 7]), min_samples=1)


@pytest.fixture(scope="module")
def cohort_model():
    from splicevi import SPLICEVI

    sim = simulate(
        n_cells=300,
        n_genes=100,
        n_events=60,
        n_types=2,
        observed_fraction=0.4,
        n_samples=4,
        sample_concentration=10.0,
        sample_lfc=0.5,
        seed=2,
    )
    mdata = sim.to_mudata()
    SPLICEVI.setup_mudata(mdata, batch_key="sample")
    torch.manual_seed(0)
    model = SPLICEVI(mdata, n_latent=4, n_hidden=16, encoder_hidden_dim=16, code_dim=4)
    model.train(max_epochs=2, batch_size=128, early_stopping=False, enable_progress_bar=False)
    return sim, mdata, model


def test_sample_level_ds_table_and_refusal(cohort_model):
    from splicevi.model._ds_samples import sample_level_ds

    sim, mdata, model = cohort_model
    cond = mdata.obs["condition"].astype(str).to_numpy()
    samples = mdata.obs["sample"].astype(str).to_numpy().astype(object)
    c1, c2 = np.nonzero(cond == "treated")[0], np.nonzero(cond == "control")[0]
    table = sample_level_ds(model, mdata, c1, c2, samples, delta=DELTA, fdr_target=0.05)
    assert table.index.name == "junction_id" and len(table) == mdata["splicing"].n_vars
    for col in (
        "effect_size",
        "pvalue",
        "qvalue",
        "log10_pvalue",
        "is_ds_fdr",
        "est_psi1",
        "est_psi2",
        "emp_psi1",
        "emp_psi2",
        "emp_effect",
        "n_obs_group1",
        "n_obs_group2",
        "junction_id",
        "event_id",
        "gene_name",
        "n_samples_group1",
        "n_samples_group2",
        "design",
        "test",
    ):
        assert col in table.columns, col
    assert table["effect_size"].abs().max() <= 1.0
    assert (table["n_samples_group1"].max(), table["n_samples_group2"].max()) == (2, 2)
    assert table.attrs["splicevi_ds"]["design"] == "samples"
    # junction rows carry their ATSE's p-value
    assert (table.groupby("event_id")["pvalue"].nunique() == 1).all()
    events = sample_level_ds(model, mdata, c1, c2, samples, delta=DELTA, fdr_target=0.05, level="event")
    assert events.index.name == "event_id" and events["event_id"].is_unique
    # one sample in group 1: refused, saying how many samples each group has and what to do
    one = np.nonzero(samples == "sample3")[0]
    with pytest.raises(ValueError, match=r"group 1 has 1 sample\(s\) \(sample3\), group 2 has 2") as err:
        sample_level_ds(model, mdata, one, c2, samples, delta=DELTA, fdr_target=0.05)
    assert "Add biological replicates" in str(err.value)


def test_de_null_condition_across_channels(cohort_model):
    sim, mdata, model = cohort_model
    table = model.differential_expression(
        groupby="condition", group1="treated", group2="control", sample_key="sample", silent=True
    )
    assert set(table["design"]) == {"samples"}
    assert table["is_de_fdr"].sum() <= 2  # no condition effect in expression: donors vary, conditions do not
    labels = model.differential_expression(
        groupby="condition", group1="treated", group2="control", design="labels", silent=True
    )
    assert set(labels["design"]) == {"labels"}
    with pytest.raises(ValueError, match="too few samples"):
        model.differential_expression(
            idx1=np.nonzero(mdata.obs["sample"].astype(str) == "sample1")[0],
            idx2=np.nonzero(mdata.obs["condition"].astype(str) == "treated")[0],
            design="samples",
            sample_key="sample",
            silent=True,
        )


def test_cli_simulate_cohort_shares_coordinates_and_writes_a_sheet(tmp_path, monkeypatch):
    from splicevi.cli.main import main
    from splicevi.data.samples import read_cohort_sheet

    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "simulate",
                "--out",
                "cohort",
                "--format",
                "starsolo",
                "--n-cells",
                "90",
                "--n-genes",
                "20",
                "--n-events",
                "15",
                "--n-samples",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    sheet = read_cohort_sheet("cohort/samples.tsv")
    assert list(sheet["sample"]) == ["sample1", "sample2", "sample3"]
    assert list(sheet["condition"]) == ["control", "control", "treated"]
    tables = [
        pd.read_csv(f"cohort/{s}/sim_SJ.out.tab", sep="\t", header=None).iloc[:, :3] for s in sheet["sample"]
    ]
    assert all(t.equals(tables[0]) for t in tables[1:])
    truth = pd.read_csv("cohort/truth_cells.tsv", sep="\t")
    assert truth.shape[0] == 90 and {"sample", "condition"} <= set(truth.columns)


def test_cli_de_picks_the_sample_design_and_says_so(tmp_path):
    from splicevi.cli.main import main

    path = tmp_path / "cohort.h5mu"
    simulate(
        n_cells=160, n_genes=40, n_events=15, n_types=2, observed_fraction=0.5, n_samples=4, seed=5
    ).to_mudata().write_h5mu(path)
    model_dir = tmp_path / "model"
    assert (
        main(
            [
                "train",
                "--mdata",
                str(path),
                "--batch-key",
                "sample",
                "--model-kwargs",
                '{"n_latent": 3}',
                "--max-epochs",
                "1",
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
    contrasts = '[{"name": "cond", "groupby": "condition", "group1": "treated", "group2": "control"}]'
    out = tmp_path / "de.tsv"
    assert (
        main(
            [
                "de",
                "--mdata",
                str(path),
                "--model",
                str(model_dir),
                "--contrasts",
                contrasts,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out, sep="\t")
    assert set(table["design"]) == {"samples"} and table["test"].str.contains("DESeq2").all()
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["log10_pvalue"].is_monotonic_increasing  # ranked by the sample-level p-value
    assert (
        main(["plot", "volcano", "--table", str(out), "--kind", "de", "--out", str(tmp_path / "v.png")]) == 0
    )
    # one sample a group (sample-level contrast between two donors): refused with the counts
    donors = '[{"name": "d", "groupby": "sample", "group1": "sample1", "group2": "sample2"}]'
    rc = main(
        [
            "de",
            "--mdata",
            str(path),
            "--model",
            str(model_dir),
            "--contrasts",
            donors,
            "--design",
            "samples",
            "--sample-key",
            "sample",
            "--out",
            str(tmp_path / "bad.tsv"),
        ]
    )
    assert rc != 0 and not (tmp_path / "bad.tsv").exists()


def test_covariates_enter_the_design_and_confounded_ones_are_refused():
    from splicevi.model._ds_samples import per_sample_covariates

    group = np.array([True, True, False, False, True, False])
    x, names = pb.design_matrix(group, pd.DataFrame({"sex": list("FMFMMF"), "age": [30, 41, 52, 38, 60, 45]}))
    assert names == ["intercept", "group", "sex[M]", "age"] and x.shape == (6, 4)
    with pytest.raises(ValueError, match="not of full rank"):
        pb.design_matrix(group, pd.DataFrame({"batch": np.where(group, "b1", "b2")}))
    samples = np.array(["a", "a", "b", "b"], dtype=object)
    per_cell = pd.DataFrame({"sex": ["F", "M", "F", "F"]})
    with pytest.raises(ValueError, match="vary within a sample"):
        per_sample_covariates(per_cell, samples, np.array(["a", "b"]), np.arange(4))
    by_sample = per_sample_covariates(
        pd.DataFrame({"sex": ["M", "F"]}, index=["b", "a"]), samples, np.array(["a", "b"]), np.arange(4)
    )
    assert by_sample["sex"].tolist() == ["F", "M"]
