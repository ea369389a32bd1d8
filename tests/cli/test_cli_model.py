"""Model-stage CLI helpers (splicevi.tl embedding, qc, ranking and contrasts; cli train/ds argument handling): fast unit tests.

The subcommands themselves run end to end in tests/workflow/test_workflow.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from splicevi.cli.main import main
from splicevi.cli.train import history_table
from splicevi.data import simulate
from splicevi.stats.contrasts import Contrast, resolve_contrasts
from splicevi.tl.embedding import leiden, neighbors_umap
from splicevi.tl.qc import qc_metrics
from splicevi.tl.ranking import events_from_junctions, rank_table


@pytest.fixture(scope="module")
def mdata():
    m = simulate(n_cells=90, n_genes=30, n_events=20, n_types=3, seed=5).to_mudata()
    m.obs["leiden"] = pd.Categorical(np.repeat(["0", "1", "2"], 30))
    return m


def _blobs(n_per=40, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(n_per, 3)) for c in centers])
    return x, np.repeat(np.arange(3), n_per)


@pytest.mark.slow
def test_neighbors_umap_and_leiden_recover_blobs():
    x, truth = _blobs()
    emb = neighbors_umap(x, [f"c{i}" for i in range(len(x))], n_neighbors=10, seed=0)
    assert emb.obsm["X_umap"].shape == (len(x), 2)
    assert sp.issparse(emb.obsp["connectivities"])
    labels = leiden(emb.obsp["connectivities"], resolution=0.5, seed=0)
    assert list(labels.categories[:3]) == ["0", "1", "2"]
    table = pd.crosstab(np.asarray(labels), truth)
    assert table.shape == (3, 3) and (table.max(axis=1) == 40).all()
    sizes = np.bincount(labels.codes)
    assert (np.diff(sizes) <= 0).all()  # named from the largest to the smallest
    again = leiden(emb.obsp["connectivities"], resolution=0.5, seed=0)
    assert (np.asarray(again) == np.asarray(labels)).all()


def test_neighbors_umap_rejects_bad_latent():
    with pytest.raises(ValueError, match="NaN"):
        neighbors_umap(np.full((5, 2), np.nan), list("abcde"))
    with pytest.raises(ValueError, match="shape"):
        neighbors_umap(np.zeros((5, 2)), list("abc"))


def test_qc_metrics(mdata):
    qc = qc_metrics(mdata)
    k = mdata["splicing"].layers["cell_by_junction_matrix"]
    assert np.allclose(qc["n_junction_reads"], np.asarray(k.sum(axis=1)).ravel())
    assert (qc["n_atse_observed"] <= mdata["splicing"].var["event_id"].nunique()).all()
    assert np.allclose(qc["total_counts"], np.asarray(mdata["rna"].X.sum(axis=1)).ravel())


def test_default_contrasts_each_cluster_vs_rest(mdata):
    contrasts = resolve_contrasts(mdata, [])
    assert contrasts == [Contrast(f"leiden{g}_vs_rest", "leiden", g, None) for g in ("0", "1", "2")]


def test_configured_contrasts_are_checked(mdata):
    obs_before = mdata.obs.copy()
    cs = resolve_contrasts(
        mdata, [{"name": "a", "groupby": "cell_type", "group1": "type1", "group2": "rest"}]
    )
    assert cs == [Contrast("a", "cell_type", "type1", None, source="cell_type")]
    pd.testing.assert_frame_equal(mdata.obs, obs_before)  # resolving contrasts writes nothing
    with pytest.raises(ValueError, match="group 'typeX' of 'cell_type' has 0 cells"):
        resolve_contrasts(mdata, [{"name": "a", "groupby": "cell_type", "group1": "typeX"}])
    with pytest.raises(ValueError, match="no cell annotation 'nope'"):
        resolve_contrasts(mdata, [{"name": "a", "groupby": "nope", "group1": "x"}])
    with pytest.raises(ValueError, match="unique"):
        resolve_contrasts(
            mdata,
            [
                {"name": "a", "groupby": "leiden", "group1": "0"},
                {"name": "a", "groupby": "leiden", "group1": "1"},
            ],
        )


def test_rank_table_and_event_summary():
    t = pd.DataFrame(
        {
            "contrast": ["b", "b", "a", "a", "a"],
            "junction_id": ["j1", "j2", "j1", "j2", "j3"],
            "event_id": ["e1", "e1", "e1", "e1", "e2"],
            "proba_ds": [0.2, 0.9, 0.95, 0.95, 0.1],
            "effect_size": [0.1, -0.4, 0.2, -0.3, 0.05],
            "is_ds_fdr": [False, True, True, True, False],
        }
    )
    r = rank_table(t, "proba_ds", "effect_size")
    assert list(r["contrast"]) == ["b", "b", "a", "a", "a"]  # contrast order kept
    assert list(r["junction_id"]) == ["j2", "j1", "j2", "j1", "j3"]  # ties broken by |effect|
    assert list(r["rank"]) == [1, 2, 1, 2, 3]
    ev = events_from_junctions(t).set_index(["contrast", "event_id"])
    assert ev.loc[("a", "e1"), "effect_size"] == -0.3 and ev.loc[("a", "e1"), "top_junction"] == "j2"
    assert ev.loc[("a", "e1"), "n_junctions"] == 2 and bool(ev.loc[("a", "e2"), "is_ds_fdr"]) is False


def test_history_table():
    hist = {
        "elbo_train": pd.DataFrame({"elbo_train": [3.0, 2.0]}),
        "elbo_validation": pd.DataFrame({"x": [4.0, 3.0]}),
    }
    t = history_table(hist)
    assert list(t.columns) == ["elbo_train", "elbo_validation"] and t.index.name == "epoch"
    assert history_table({}).empty


def test_cli_errors_are_clear(tmp_path, capsys):
    rc = main(
        [
            "train",
            "--mdata",
            str(tmp_path / "missing.h5mu"),
            "--out-model",
            str(tmp_path / "m"),
            "--out-history",
            str(tmp_path / "h.tsv"),
        ]
    )
    assert rc == 3 and "MuData (.h5mu) not found" in capsys.readouterr().err
    rc = main(
        ["train", "--mdata", "x.h5mu", "--model-kwargs", "{bad", "--out-model", "m", "--out-history", "h"]
    )
    assert rc == 2 and "--model-kwargs is not valid JSON" in capsys.readouterr().err
    rc = main(["plot", "training", "--history", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "x.png")])
    assert rc == 3 and "table not found" in capsys.readouterr().err
    assert not (tmp_path / "m").exists() and not (tmp_path / "x.png").exists()


def test_train_flags_reach_the_saved_model(tmp_path):
    """--model-kwargs, --batch-key, --max-epochs and --no-early-stopping change what `train` saves."""
    from splicevi import SPLICEVI
    from splicevi.cli._common import read_mudata, setup_model_data

    path = tmp_path / "two_batches.h5mu"
    simulate(
        n_cells=60, n_genes=20, n_events=10, n_types=2, n_batches=2, observed_fraction=0.5, seed=3
    ).to_mudata().write_h5mu(path)
    model_dir, history = tmp_path / "model", tmp_path / "history.tsv"
    rc = main(
        [
            "train",
            "--mdata",
            str(path),
            "--batch-key",
            "batch",
            "--model-kwargs",
            '{"n_latent": 3, "n_hidden": 24, "gene_likelihood": "poisson"}',
            "--max-epochs",
            "3",
            "--no-early-stopping",
            "--threads",
            "1",
            "--out-model",
            str(model_dir),
            "--out-history",
            str(history),
        ]
    )
    assert rc == 0
    mdata = read_mudata(path)
    setup_model_data(mdata, "batch")
    model = SPLICEVI.load(str(model_dir), adata=mdata)
    saved = model.init_params_["non_kwargs"] | model.init_params_.get("kwargs", {}).get("kwargs", {})
    assert (saved["n_latent"], saved["n_hidden"], saved["gene_likelihood"]) == (3, 24, "poisson")
    assert model.module.n_latent == 3 and model.summary_stats["n_batch"] == 2
    assert len(pd.read_csv(history, sep="\t", index_col=0)) == 3
