"""The final .h5mu follows scverse conventions; the README's scanpy example runs on it as written."""

from __future__ import annotations

import re
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest

from model_fixtures import make_results
from splicevi.tl.embedding import LATENT_KEYS

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h5mu")
    return make_results(folder)


def test_neighbors_provenance_and_per_modality_annotations(results):
    mdata = md.read_h5mu(results)
    nb = mdata.uns["splicevi"]
    assert (
        nb["connectivities_key"] == "splicevi_connectivities" and nb["distances_key"] == "splicevi_distances"
    )
    assert nb["params"]["use_rep"] == LATENT_KEYS["joint"] and nb["params"]["n_neighbors"] == 10
    assert mdata.obsp["splicevi_connectivities"].shape == (mdata.n_obs, mdata.n_obs)
    prov = mdata.uns["splicevi_provenance"]
    assert prov["source"] == "splicevi.data.simulate"  # the record written before clustering, kept
    assert prov["cluster"]["resolution"] == 0.3 and prov["embed"]["n_neighbors"] == 10
    for name, mod in mdata.mod.items():
        assert (
            mod.obs["leiden"].astype(str).to_numpy()
            == mdata.obs.loc[mod.obs_names, "leiden"].astype(str).to_numpy()
        ).all(), name
        assert set(mod.obs["sample"].astype(str)) == {"s1", "s2"}
        for key in (*LATENT_KEYS.values(), "X_umap"):
            rows = mdata.obs_names.get_indexer(mod.obs_names)
            assert np.allclose(mod.obsm[key], mdata.obsm[key][rows]), (name, key)


def test_scanpy_runs_on_the_mudata_with_the_documented_neighbors_key(results):
    import scanpy as sc

    mdata = md.read_h5mu(results)
    sc.tl.leiden(
        mdata, neighbors_key="splicevi", key_added="again", flavor="igraph", n_iterations=2, resolution=0.3
    )
    # three planted cell types, well separated in the latent: Leiden finds them on the stored graph
    table = pd.crosstab(mdata.obs["again"], mdata.obs["cell_type"])
    assert table.shape[1] == 3 and (table.max(axis=0) / table.sum(axis=0)).min() > 0.9
    before = np.asarray(mdata.obsm["X_umap"]).copy()
    sc.tl.umap(mdata, neighbors_key="splicevi", random_state=1)
    assert mdata.obsm["X_umap"].shape == before.shape and not np.allclose(mdata.obsm["X_umap"], before)
    sc.tl.rank_genes_groups(mdata["rna"], "leiden", method="t-test")
    assert set(mdata["rna"].uns["rank_genes_groups"]["names"].dtype.names) == set(
        mdata.obs["leiden"].astype(str)
    )


def test_readme_scverse_example_runs_as_written(tmp_path, monkeypatch):
    blocks = [
        b
        for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
        if "results/splicevi.h5mu" in b
    ]
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
