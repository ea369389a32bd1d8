"""Imputation helper: hide whole ATSEs per cell and score predictions against baselines."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from splicevi.data import simulate
from splicevi.data.layers import event_codes
from splicevi.tl.imputation import group_mean_psi, hide_events, hide_events_mudata, imputation_scores


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=150, n_genes=40, n_events=40, observed_fraction=0.3, seed=3)


def test_hide_events_hides_whole_atses(sim):
    codes, _ = event_codes(sim.junctions["event_id"])
    k = sim.junction_counts
    masked, hidden = hide_events(k, codes, fraction=0.25, seed=0)
    # Hidden entries lose all reads; the hidden (cell, ATSE) pairs cover every junction of the ATSE.
    assert np.asarray(masked[hidden.rows, hidden.cols]).sum() == 0
    pairs = set(zip(hidden.rows.tolist(), codes[hidden.cols].tolist(), strict=True))
    sizes = np.bincount(codes)
    assert len(hidden.rows) == sum(sizes[e] for _, e in pairs)
    np.testing.assert_allclose(hidden.k, np.asarray(k[hidden.rows, hidden.cols]).ravel())
    assert (hidden.n > 0).all() and (hidden.psi <= 1).all()
    # Per cell, round(0.25 × observed ATSEs) are hidden.
    observed = (k @ sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)))) > 0
    n_obs = np.asarray(observed.sum(axis=1)).ravel()
    hidden_per_cell = np.bincount([r for r, _ in pairs], minlength=k.shape[0])
    np.testing.assert_array_equal(hidden_per_cell, np.floor(0.25 * n_obs + 0.5))
    # Untouched entries keep their reads.
    diff = (k - masked).tocoo()
    assert set(zip(diff.row[diff.data != 0].tolist(), diff.col[diff.data != 0].tolist(), strict=True)) <= set(
        zip(hidden.rows.tolist(), hidden.cols.tolist(), strict=True)
    )
    with pytest.raises(ValueError):
        hide_events(k, codes, fraction=1.5)


def test_hide_events_mudata_layers_consistent(sim):
    mdata = sim.to_mudata()
    masked, hidden = hide_events_mudata(mdata, fraction=0.2, seed=1)
    spl = masked["splicing"]
    n = spl.layers["cell_by_cluster_matrix"]
    assert np.asarray(n[hidden.rows, hidden.cols]).sum() == 0
    assert spl.layers["psi_mask"].sum() < mdata["splicing"].layers["psi_mask"].sum()
    # The original is untouched.
    assert (
        mdata["splicing"].layers["cell_by_junction_matrix"].sum()
        > spl.layers["cell_by_junction_matrix"].sum()
    )


def test_imputation_scores_and_baselines(sim):
    codes, _ = event_codes(sim.junctions["event_id"])
    masked, hidden = hide_events(sim.junction_counts, codes, fraction=0.2, seed=0)
    groups = sim.obs["cell_type"].to_numpy()
    perfect = np.zeros(sim.junction_counts.shape)
    perfect[hidden.rows, hidden.cols] = hidden.psi
    scores = imputation_scores(perfect, hidden, masked, codes, groups)
    assert scores["model"]["l1"] == 0 and scores["model"]["spearman"] == pytest.approx(1.0)
    assert set(scores) == {"model", "group_mean", "global_mean"}
    # The group mean knows the planted types: at least as good as the global mean here.
    assert scores["group_mean"]["l1"] <= scores["global_mean"]["l1"] + 1e-9
    # Truth PSI per type as a prediction beats the global mean.
    truth = sim.type_psi[sim.obs["cell_type"].cat.codes.to_numpy()]
    oracle = imputation_scores(truth, hidden, masked, codes, groups)
    assert oracle["model"]["pearson"] > oracle["global_mean"]["pearson"]


def test_group_mean_psi_hand_case():
    codes = np.array([0, 0, 1])
    k = sp.csr_matrix(np.array([[1, 3, 2], [2, 0, 0], [0, 0, 0]], dtype=float))
    table, gcode = group_mean_psi(k, codes, np.array(["a", "a", "b"]))
    np.testing.assert_allclose(table[0], [(0.25 + 1) / 2, (0.75 + 0) / 2, 1.0])
    # Group b observes nothing: global mean.
    np.testing.assert_allclose(table[1], table[0])
    np.testing.assert_array_equal(gcode, [0, 0, 1])
