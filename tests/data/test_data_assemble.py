"""Masking and assembly into the MuData contract; reference-layout files; model accepts the output."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from data_fixtures import tiny_simulation
from splicevi.data._tables import InputError
from splicevi.data.assemble import assemble, harmonize_splicing, length_normalize
from splicevi.data.layers import SPLICING_LAYERS, layer_or_derived


@pytest.fixture
def tiny_sim():
    """A tiny simulation (fast): 80 cells, 40 genes, 25 events."""
    return tiny_simulation()


def _inputs(sim):
    """Junction AnnData + events table as ingest/atse would make them from a simulation."""
    var = sim.junctions[["chrom", "start", "end", "strand", "motif", "annotated"]].copy()
    jun = ad.AnnData(
        X=sim.junction_counts.copy(), obs=pd.DataFrame({"batch": "b0"}, index=sim.obs.index), var=var
    )
    events = sim.junctions.reset_index()[["junction_id", "event_id", "gene_id", "gene_name"]]
    genes = ad.AnnData(X=sim.gene_counts.copy(), obs=pd.DataFrame(index=sim.obs.index), var=sim.genes.copy())
    return jun, events, genes


def test_layers_contract(tiny_sim):
    jun, events, genes = _inputs(tiny_sim)
    mdata, report = assemble(jun, events, genes, published_layout=True)
    s = mdata["splicing"]
    for name in SPLICING_LAYERS:
        assert sp.isspmatrix_csr(s.layers[name]) or isinstance(s.layers[name], sp.csr_array), name
    k = s.layers["cell_by_junction_matrix"].toarray()
    n = s.layers["cell_by_cluster_matrix"].toarray()
    mask = s.layers["psi_mask"].toarray()
    ratio = s.layers["junc_ratio"].toarray()
    # n is the event total of k on every junction of the event; computed independently here.
    codes = pd.factorize(s.var["event_id"])[0]
    per_event = np.zeros((s.n_obs, codes.max() + 1))
    np.add.at(per_event.T, codes, k.T)
    np.testing.assert_allclose(n, per_event[:, codes])
    np.testing.assert_array_equal(mask, (n > 0).astype(np.float32))
    np.testing.assert_allclose(ratio[n > 0], k[n > 0] / n[n > 0], rtol=1e-6)
    # Observed PSI of 0 is stored explicitly (data, not missing).
    assert s.layers["junc_ratio"].nnz == s.layers["psi_mask"].nnz
    assert (s.X != s.layers["junc_ratio"]).nnz == 0
    assert list(s.var.columns[:9]) == [
        "chrom",
        "start",
        "end",
        "strand",
        "motif",
        "annotated",
        "event_id",
        "gene_id",
        "gene_name",
    ]
    np.testing.assert_array_equal(s.var["n_cells_observed"].to_numpy(), mask.sum(axis=0))
    assert s.var.index.name == "junction_id"
    assert "rna" in mdata.mod and sp.issparse(mdata["rna"].X)
    assert {"batch", "n_junction_reads", "n_events_observed", "frac_events_observed", "n_counts"} <= set(
        mdata.obs
    )
    assert (
        mdata.uns["splicevi_provenance"]["assemble"]["n_events"]
        == report["n_events"]
        == tiny_sim.events.shape[0]
    )
    from importlib.metadata import version

    assert mdata.uns["splicevi_provenance"]["versions"]["anndata"] == version("anndata")


def test_lean_layout_stores_k_only_and_derives_the_rest(tiny_sim, tmp_path):
    """Default layout: only k on disk (X is k, stored once); n, PSI and mask derived on demand equal the published layers."""
    from splicevi._io import write_x_as_layer

    jun, events, genes = _inputs(tiny_sim)
    published, _ = assemble(jun, events, genes, published_layout=True)
    lean, report = assemble(jun, events, genes)
    assert report["layout"] == "lean"
    assert lean["splicing"].X is lean["splicing"].layers["cell_by_junction_matrix"]  # scanpy reads X
    write_x_as_layer(lean, tmp_path / "lean.h5mu", "cell_by_junction_matrix", modality="splicing")
    back = md.read_h5mu(tmp_path / "lean.h5mu")["splicing"]
    assert list(back.layers.keys()) == ["cell_by_junction_matrix"]
    assert (back.X != back.layers["cell_by_junction_matrix"]).nnz == 0
    ref = published["splicing"]
    for name in SPLICING_LAYERS:
        got = layer_or_derived(back, name)
        want = sp.csr_matrix(ref.layers[name])
        assert got.shape == want.shape and (got != want).nnz == 0, name
    # Observed zeros survive derivation (observed is n > 0, not k > 0).
    assert (
        layer_or_derived(back, "junc_ratio").nnz
        == layer_or_derived(back, "psi_mask").nnz
        > back.layers["cell_by_junction_matrix"].nnz
    )
    np.testing.assert_array_equal(back.var["n_cells_observed"], ref.var["n_cells_observed"])
    np.testing.assert_array_equal(back.obs["n_events_observed"], ref.obs["n_events_observed"])
    with pytest.raises(KeyError, match="cannot be derived"):
        layer_or_derived(back, "something_else")


def test_splicing_only_and_min_cell_reads(tiny_sim, tmp_path):
    jun, events, _ = _inputs(tiny_sim)
    reads = np.asarray(jun.X.sum(axis=1)).ravel()
    mdata, report = assemble(jun, events, None, min_cell_reads=int(np.median(reads)))
    assert set(mdata.mod) == {"splicing"}
    assert mdata.n_obs == int((reads >= np.median(reads)).sum())
    assert report["n_cells_dropped_min_reads"] == jun.n_obs - mdata.n_obs
    mdata.write(tmp_path / "x.h5mu")
    back = md.read_h5mu(tmp_path / "x.h5mu")
    assert sp.issparse(layer_or_derived(back["splicing"], "psi_mask"))


def test_genes_matched_to_junction_cells(tiny_sim):
    jun, events, genes = _inputs(tiny_sim)
    genes = genes[::-1][:60].copy()  # other order, 20 cells missing
    mdata, report = assemble(jun, events, genes)
    assert mdata.n_obs == 60 and report["barcodes"]["n_junction_only"] == 20
    assert (mdata["rna"].obs_names == mdata["splicing"].obs_names).all()
    cell = mdata.obs_names[0]
    np.testing.assert_array_equal(
        mdata["rna"][cell].X.toarray(), tiny_sim.gene_counts[tiny_sim.obs.index.get_loc(cell)].toarray()
    )


def test_length_norm():
    counts = sp.csr_matrix(np.array([[10.0, 0, 4], [2, 6, 0]], dtype=np.float32))
    out, missing = length_normalize(counts, pd.Index(["a", "b", "c"]), pd.Series({"a": 1000.0, "b": 4000.0}))
    # median length 2500: a × 2.5, b × 0.625, c (no length) unchanged.
    np.testing.assert_allclose(out.toarray(), [[25, 0, 4], [5, 3.75, 0]])
    assert missing == 1 and sp.issparse(out)


def test_events_from_other_junctions_file_rejected(tiny_sim):
    jun, events, _ = _inputs(tiny_sim)
    events.loc[0, "junction_id"] = "chrZ:1-100:+"
    with pytest.raises(InputError, match="not in the junctions file"):
        assemble(jun, events, None, events_source="events.tsv")


def test_reference_layout_is_harmonized(tiny_sim):
    """Dense junc_ratio / psi_mask layers (the reference implementation's files) become CSR."""
    mdata = tiny_sim.to_mudata(with_expression=False)
    s = mdata["splicing"]
    dense = ad.AnnData(
        X=s.layers["junc_ratio"].toarray(),
        var=s.var.copy(),
        obs=s.obs.copy(),
        layers={name: s.layers[name].toarray() for name in SPLICING_LAYERS},
    )
    out = harmonize_splicing(dense)
    for name in SPLICING_LAYERS:
        assert sp.issparse(out.layers[name])
        np.testing.assert_allclose(out.layers[name].toarray(), s.layers[name].toarray())
    # Counts + event ids only (the lean layout): stays lean, the other layers are derived on use.
    slim = ad.AnnData(
        X=s.layers["cell_by_junction_matrix"].copy(),
        var=s.var.copy(),
        layers={"cell_by_junction_matrix": s.layers["cell_by_junction_matrix"].toarray()},
    )
    harmonize_splicing(slim)
    assert list(slim.layers) == ["cell_by_junction_matrix"] and sp.issparse(
        slim.layers["cell_by_junction_matrix"]
    )
    assert (layer_or_derived(slim, "psi_mask") != s.layers["psi_mask"]).nnz == 0
    # Totals without a mask (no counts to derive it from): the mask n > 0 is added.
    totals = ad.AnnData(
        X=s.layers["junc_ratio"].copy(),
        var=s.var.copy(),
        layers={"cell_by_cluster_matrix": s.layers["cell_by_cluster_matrix"].toarray()},
    )
    harmonize_splicing(totals)
    assert (totals.layers["psi_mask"] != s.layers["psi_mask"]).nnz == 0


def test_model_accepts_assembled_file(tiny_sim, tmp_path):
    splicevi = pytest.importorskip("splicevi")
    if not hasattr(splicevi, "SPLICEVI"):
        pytest.skip("splicevi.SPLICEVI not available in this checkout")
    jun, events, genes = _inputs(tiny_sim)
    mdata, _ = assemble(jun, events, genes)
    mdata.write(tmp_path / "d.h5mu")
    back = md.read_h5mu(tmp_path / "d.h5mu")
    splicevi.SPLICEVI.setup_mudata(back, batch_key="batch")
    model = splicevi.SPLICEVI(back)
    assert model is not None
