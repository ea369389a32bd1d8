"""Figures of splicevi.pl on small synthetic inputs: files are written, bad inputs give clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from splicevi import pl
from splicevi.data import simulate
from splicevi.tl.clustering import events_from_junctions, rank_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sim():
    return simulate(n_cells=120, n_genes=40, n_events=30, n_types=3, seed=3)


@pytest.fixture(scope="module")
def mdata(sim):
    m = sim.to_mudata()
    m.obs["leiden"] = pd.Categorical(m.obs["cell_type"].astype(str).str.replace("type", ""))
    return m


@pytest.fixture(scope="module")
def ds_table(sim):
    """A DS table shaped like `splicevi ds` output, with the true ΔPSI as effect."""
    j = sim.junctions
    rows = []
    for t in ("type1", "type2"):
        eff = (j[f"true_psi_{t}"] - j["true_psi_type0"]).to_numpy()
        proba = np.clip(np.abs(eff) * 3, 0.01, 0.99)
        rows.append(
            pd.DataFrame(
                {
                    "contrast": f"{t}_vs_type0",
                    "junction_id": j.index.astype(str),
                    "event_id": j["event_id"].to_numpy(),
                    "gene_name": j["gene_name"].to_numpy(),
                    "proba_ds": proba,
                    "bayes_factor": np.log(proba / (1 - proba)),
                    "effect_size": eff,
                    "is_ds_fdr": proba > 0.5,
                }
            )
        )
    return rank_table(pd.concat(rows, ignore_index=True), "proba_ds", "effect_size")


def _check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 2000


def test_training_curves(tmp_path):
    history = pd.DataFrame(
        {
            "elbo_train": np.linspace(100, 50, 10),
            "elbo_validation": np.linspace(110, 60, 10),
            "reconstruction_loss_train": np.linspace(90, 45, 10),
            "kl_local_train": np.linspace(1, 5, 10),
        }
    )
    out = tmp_path / "t.png"
    pl.save_figure(pl.training_curves(history), out)
    _check_png(out)
    svg = tmp_path / "t.svg"
    pl.save_figure(pl.training_curves(history), svg)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()[:2000]


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        pl.save_figure(pl.training_curves(pd.DataFrame({"elbo_train": [1.0, 0.5]})), tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())


def test_umap_categorical_numeric_and_qc(tmp_path):
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(
        {
            "umap1": rng.normal(size=200),
            "umap2": rng.normal(size=200),
            "leiden": rng.integers(0, 14, 200).astype(str),
            "cell_type": rng.choice(["a", "b"], 200),
            "n_junction_reads": rng.poisson(50, 200),
            "n_atse_observed": rng.poisson(5, 200),
        }
    )
    out = tmp_path / "u.png"
    pl.save_figure(pl.umap(cells, ["leiden", "qc", "annotations"]), out)
    _check_png(out)
    with pytest.raises(ValueError, match="no cell annotation 'batch'"):
        pl.umap(cells, ["batch"])


def test_volcano_ds_and_de(tmp_path, ds_table):
    out = tmp_path / "v.png"
    pl.save_figure(pl.volcano(ds_table, "ds"), out)
    _check_png(out)
    de = pd.DataFrame({"contrast": "a", "gene_id": ["g1", "g2"], "lfc_mean": [1.0, -0.2], "proba_de": [0.99, 0.2]})
    pl.save_figure(pl.volcano(de, "de"), tmp_path / "d.png")
    with pytest.raises(ValueError, match="lacks column 'proba_ds'"):
        pl.volcano(ds_table.drop(columns="proba_ds"), "ds")


def test_group_psi_matches_counts(mdata, sim):
    """Pooled observed PSI per group equals sum(k) / sum(n) over the group's cells."""
    from splicevi.pl.psi import group_psi

    junctions = list(sim.junctions.index[:5].astype(str))
    psi, frac = group_psi(mdata, junctions, "leiden")
    k = mdata["splicing"].layers["cell_by_junction_matrix"].toarray()
    n = mdata["splicing"].layers["cell_by_cluster_matrix"].toarray()
    cells = (mdata.obs["leiden"] == "1").to_numpy()
    j = 2
    expect = k[cells, j].sum() / n[cells, j].sum()
    assert psi.loc[junctions[j], "1"] == pytest.approx(expect)
    assert frac.loc[junctions[j], "1"] == pytest.approx((n[cells, j] > 0).mean())
    # PSI of the junctions of one event sum to one within a group
    first_event = sim.junctions["event_id"].iloc[0]
    members = list(sim.junctions.index[sim.junctions["event_id"] == first_event].astype(str))
    p, _ = group_psi(mdata, members, "leiden")
    assert p["0"].sum() == pytest.approx(1.0)


def test_top_events_psi_and_coverage(tmp_path, mdata, ds_table):
    out = tmp_path / "psi.png"
    pl.save_figure(pl.top_events_psi(mdata, ds_table, "leiden", n_top=3), out)
    _check_png(out)
    events = events_from_junctions(ds_table)
    assert set(events.columns) >= {"contrast", "event_id", "proba_ds", "effect_size", "is_ds_fdr"}
    assert len(events) == ds_table.groupby(["contrast", "event_id"]).ngroups
    cov = tmp_path / "cov.png"
    pl.save_figure(pl.event_coverage(mdata, rank_table(events, "proba_ds", "effect_size"), "leiden", n_top=3), cov)
    _check_png(cov)
    with pytest.raises(ValueError, match="no cell annotation 'nope'"):
        pl.top_events_psi(mdata, ds_table, "nope")
