"""The splicing modality is scanpy-ready: X holds the junction counts, in data.h5mu and in export/splicing.h5ad.

Built through the command line (simulate -> ingest -> atse -> assemble -> export h5ad), as the workflow
does; X is stored once (a hard link to the count layer), so the file does not grow.
"""

from __future__ import annotations

import anndata as ad
import h5py
import mudata as md
import numpy as np
import pytest

from splicevi.cli.main import main

LAYER = "cell_by_junction_matrix"


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    work = tmp_path_factory.mktemp("scanpy")
    assert (
        main(
            [
                "simulate",
                "--out",
                str(work / "sim"),
                "--format",
                "starsolo",
                "--n-cells",
                "80",
                "--n-genes",
                "30",
                "--n-events",
                "30",
                "--n-types",
                "2",
                "--seed",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "ingest",
                "--junctions",
                str(work / "sim" / "Solo.out" / "SJ" / "raw"),
                "--no-progress",
                "--out-junctions",
                str(work / "junctions.h5ad"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "atse",
                "--junctions",
                str(work / "junctions.h5ad"),
                "--min-reads",
                "3",
                "--min-cells",
                "2",
                "--out",
                str(work / "events.tsv"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "assemble",
                "--junctions",
                str(work / "junctions.h5ad"),
                "--events",
                str(work / "events.tsv"),
                "--out",
                str(work / "data.h5mu"),
            ]
        )
        == 0
    )
    return work


def test_x_is_the_junction_counts_and_stored_once(assembled):
    path = assembled / "data.h5mu"
    spl = md.read_h5mu(path)["splicing"]
    assert spl.X is not None
    assert (spl.X != spl.layers[LAYER]).nnz == 0
    with h5py.File(path, "r") as fh:  # one copy on disk: X is the layer's group
        assert fh["mod/splicing/X"].id == fh[f"mod/splicing/layers/{LAYER}"].id


def test_scanpy_qc_and_umap_by_junction_on_the_modality_and_the_export(assembled, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    from splicevi.cli._common import read_mudata

    mdata = read_mudata(assembled / "data.h5mu")
    spl = mdata["splicing"]
    assert spl.X is spl.layers[LAYER]  # one matrix in memory
    sc.pp.calculate_qc_metrics(spl, inplace=True, percent_top=None)
    reads = np.asarray(spl.layers[LAYER].sum(axis=1)).ravel()
    assert np.allclose(spl.obs["total_counts"].to_numpy(), reads)

    assert main(["export", "h5ad", "--mdata", str(assembled / "data.h5mu"), "--out-dir", str(tmp_path)]) == 0
    exported = ad.read_h5ad(tmp_path / "splicing.h5ad")
    assert exported.X is not None and (exported.X != exported.layers[LAYER]).nnz == 0
    qc = sc.pp.calculate_qc_metrics(exported, percent_top=None)[0]
    assert np.allclose(qc["total_counts"].to_numpy(), reads)
    exported.obsm["X_umap"] = np.random.default_rng(0).normal(size=(exported.n_obs, 2))
    fig = sc.pl.umap(exported, color=exported.var_names[0], show=False, return_fig=True)
    assert fig is not None
