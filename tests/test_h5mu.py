"""The final .h5mu follows scverse conventions; the README's scanpy example runs on it as written."""

from __future__ import annotations

import re
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest

from splicevi.cli.main import main
from splicevi.data import simulate
from splicevi.tl.embedding import LATENT_KEYS, neighbors_umap

README = Path(__file__).resolve().parents[1] / "README.md"


def make_results(folder: Path, seed: int = 4) -> Path:
    """``splicevi cluster`` output (``folder/results/splicevi.h5mu``) from a simulation and a latent.

    The latent is the simulation's cell-type signal plus noise (no model: fast), embedded with the
    same helper as ``splicevi embed``.
    """
    sim = simulate(n_cells=150, n_genes=60, n_events=30, n_types=3, seed=seed)
    mdata = sim.to_mudata()
    data = folder / "data.h5mu"
    mdata.write(data)
    rng = np.random.default_rng(seed)
    types = mdata.obs["cell_type"].astype("category").cat.codes.to_numpy()
    joint = np.eye(3)[types] * 6 + rng.normal(size=(mdata.n_obs, 3))
    extra = {LATENT_KEYS["splicing"]: joint[:, :2], LATENT_KEYS["expression"]: joint[:, 1:]}
    emb = neighbors_umap(joint, mdata.obs_names, n_neighbors=10, seed=0, extra_latents=extra)
    emb.uns["splicevi_embed"] = {"n_neighbors": 10}
    emb.write_h5ad(folder / "embedding.h5ad")
    annotations = folder / "annotations.tsv"
    pd.DataFrame({"cell_id": mdata.obs_names, "sample": np.where(np.arange(mdata.n_obs) % 2, "s1", "s2")}).to_csv(
        annotations, sep="\t", index=False
    )
    out = folder / "results" / "splicevi.h5mu"
    out.parent.mkdir(parents=True, exist_ok=True)
    rc = main(["cluster", "--mdata", str(data), "--embedding", str(folder / "embedding.h5ad"), "--resolution", "0.3",
               "--annotations", str(annotations), "--out", str(out), "--out-cells", str(folder / "cells.tsv")])
    assert rc == 0
    write_ds_tables(md.read_h5mu(out), out.parent / "ds")
    return out


def write_ds_tables(mdata, folder: Path) -> None:
    """``ds_junctions.tsv`` / ``ds_events.tsv`` as `splicevi ds` writes them, from the planted ΔPSI.

    Two contrasts (type1 and type2 against type0); the probability grows with the true |ΔPSI|.
    """
    from splicevi.cli.ds import annotate_ds_tables
    from splicevi.tl.ranking import events_from_junctions, rank_table

    var = mdata["splicing"].var
    rows = []
    for g in ("type1", "type2"):
        eff = (var[f"true_psi_{g}"] - var["true_psi_type0"]).to_numpy()
        proba = np.clip(np.abs(eff) * 4, 0, 1)
        rows.append(pd.DataFrame({"contrast": f"{g}_vs_type0", "groupby": "cell_type", "group1": g, "group2": "type0",
                                  "junction_id": var.index.astype(str), "event_id": var["event_id"].to_numpy(),
                                  "proba_ds": proba, "effect_size": eff, "is_ds_fdr": proba > 0.8}))
    junctions = rank_table(pd.concat(rows, ignore_index=True), "proba_ds", "effect_size")
    events = rank_table(events_from_junctions(junctions), "proba_ds", "effect_size")
    j, e = annotate_ds_tables(mdata, junctions, events)
    folder.mkdir(parents=True, exist_ok=True)
    j.to_csv(folder / "ds_junctions.tsv", sep="\t", index=False)
    e.to_csv(folder / "ds_events.tsv", sep="\t", index=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h5mu")
    return make_results(folder)


def test_neighbors_provenance_and_per_modality_annotations(results):
    mdata = md.read_h5mu(results)
    nb = mdata.uns["splicevi"]
    assert nb["connectivities_key"] == "splicevi_connectivities" and nb["distances_key"] == "splicevi_distances"
    assert nb["params"]["use_rep"] == LATENT_KEYS["joint"] and nb["params"]["n_neighbors"] == 10
    assert mdata.obsp["splicevi_connectivities"].shape == (mdata.n_obs, mdata.n_obs)
    prov = mdata.uns["splicevi_provenance"]
    assert prov["source"] == "splicevi.data.simulate"  # the record written before clustering, kept
    assert prov["cluster"]["resolution"] == 0.3 and prov["embed"]["n_neighbors"] == 10
    for name, mod in mdata.mod.items():
        assert (mod.obs["leiden"].astype(str).to_numpy() == mdata.obs.loc[mod.obs_names, "leiden"].astype(str).to_numpy()).all(), name
        assert set(mod.obs["sample"].astype(str)) == {"s1", "s2"}
        for key in (*LATENT_KEYS.values(), "X_umap"):
            rows = mdata.obs_names.get_indexer(mod.obs_names)
            assert np.allclose(mod.obsm[key], mdata.obsm[key][rows]), (name, key)


def test_scanpy_runs_on_the_mudata_with_the_documented_neighbors_key(results):
    import scanpy as sc

    mdata = md.read_h5mu(results)
    sc.tl.leiden(mdata, neighbors_key="splicevi", key_added="again", flavor="igraph", n_iterations=2, resolution=0.3)
    # three planted cell types, well separated in the latent: Leiden finds them on the stored graph
    table = pd.crosstab(mdata.obs["again"], mdata.obs["cell_type"])
    assert table.shape[1] == 3 and (table.max(axis=0) / table.sum(axis=0)).min() > 0.9
    before = np.asarray(mdata.obsm["X_umap"]).copy()
    sc.tl.umap(mdata, neighbors_key="splicevi", random_state=1)
    assert mdata.obsm["X_umap"].shape == before.shape and not np.allclose(mdata.obsm["X_umap"], before)
    sc.tl.rank_genes_groups(mdata["rna"], "leiden", method="t-test")
    assert set(mdata["rna"].uns["rank_genes_groups"]["names"].dtype.names) == set(mdata.obs["leiden"].astype(str))


def test_readme_scverse_example_runs_as_written(tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if "results/splicevi.h5mu" in b]
    assert len(blocks) == 1, "README has no scverse example on results/splicevi.h5mu"
    make_results(tmp_path)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102 - the point of the test
    rna, mdata = namespace["rna"], namespace["mdata"]
    assert "rank_genes_groups" in rna.uns and "leiden_fine" in mdata.obs
    assert len(namespace["markers"]) > 0
    assert (tmp_path / "top_arcs.png").read_bytes().startswith(b"\x89PNG")
    arcs = namespace["arcs"]
    assert len(arcs.axes) == mdata.obs["leiden"].nunique()  # one panel per cluster
