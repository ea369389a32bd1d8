"""Columns of the DS / DE tables: coordinates, genes, annotation status, common call names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_fixtures import SPLIKIT, needs_shared
from splicevi.cli.de import annotate_de_table
from splicevi.cli.ds import annotate_ds_tables
from splicevi.data import simulate
from splicevi.tl.annotate import (
    JUNCTION_COLUMNS,
    event_coordinates,
    junction_coordinates,
    rename_call_columns,
)


@pytest.fixture(scope="module")
def mdata():
    m = simulate(n_cells=60, n_genes=20, n_events=12, n_types=3, seed=5).to_mudata()
    var = m["splicing"].var
    var["annotated"] = 1
    var.iloc[0, var.columns.get_loc("annotated")] = 0  # one novel junction in the first ATSE
    return m


def _model_tables(mdata):
    """Tables shaped like the model's output (ids, a gene_name, statistics), rows shuffled."""
    var = mdata["splicing"].var
    rng = np.random.default_rng(0)
    junctions = pd.DataFrame(
        {
            "contrast": "a",
            "junction_id": var.index.astype(str),
            "event_id": var["event_id"].to_numpy(),
            "gene_name": "stale",
            "proba_ds": rng.uniform(size=var.shape[0]),
            "is_ds_fdr": False,
            "effect_size": rng.normal(0, 0.1, var.shape[0]),
        }
    ).sample(frac=1.0, random_state=1)
    events = pd.DataFrame(
        {"contrast": "a", "event_id": var["event_id"].unique(), "proba_ds": 0.5, "is_ds_fdr": True}
    )
    return junctions, events


def test_ds_tables_carry_coordinates_genes_and_annotation(mdata):
    junctions, events = _model_tables(mdata)
    j, e = annotate_ds_tables(mdata, junctions, events)
    var = mdata["splicing"].var
    assert list(j.columns[:10]) == [
        "contrast",
        "junction_id",
        *JUNCTION_COLUMNS,
        "event_id",
    ]  # ids first, stats after
    row = j.set_index("junction_id").loc[var.index[3]]
    assert (row["chrom"], row["start"], row["end"], row["strand"]) == tuple(
        var.iloc[3][["chrom", "start", "end", "strand"]]
    )
    assert row["gene_id"] == var.iloc[3]["gene_id"] and row["gene_name"] == var.iloc[3]["gene_name"]
    assert f"{row['chrom']}:{row['start']}-{row['end']}:{row['strand']}" == var.index[3]  # 1-based, as the id
    assert not j.set_index("junction_id").loc[var.index[0], "annotated"]
    # statistics untouched, in the model's row order
    assert np.allclose(j["proba_ds"].to_numpy(), junctions["proba_ds"].to_numpy())
    # events: span of their introns; annotated only when every junction is
    first = var["event_id"].iloc[0]
    members = var[var["event_id"] == first]
    ev = e.set_index("event_id")
    assert ev.loc[first, "start"] == members["start"].min() and ev.loc[first, "end"] == members["end"].max()
    assert not ev.loc[first, "annotated"] and ev.loc[first, "n_annotated"] == len(members) - 1
    other = var["event_id"].iloc[-1]
    assert ev.loc[other, "annotated"] and ev.loc[other, "n_annotated"] == (var["event_id"] == other).sum()
    assert {"chrom", "strand", "gene_id", "gene_name"} <= set(e.columns)


def test_ds_table_with_unknown_junction_is_rejected(mdata):
    junctions, events = _model_tables(mdata)
    junctions.iloc[0, junctions.columns.get_loc("junction_id")] = "chrZ:1-2:+"
    with pytest.raises(ValueError, match="not in the data, e.g. 'chrZ:1-2:\\+'"):
        annotate_ds_tables(mdata, junctions, events)


def test_coordinates_from_ids_when_var_lacks_them():
    var = pd.DataFrame({"event_id": ["E1", "E1"]}, index=["chr1:100-200:+", "chr1:100-300:+"])
    coords = junction_coordinates(var)
    assert coords["start"].tolist() == [100, 100] and coords["end"].tolist() == [200, 300]
    assert coords["gene_name"].isna().all() and coords["annotated"].isna().all()
    ev = event_coordinates(var)
    assert pd.isna(ev.loc["E1", "annotated"]) and ev.loc["E1", "end"] == 300
    with pytest.raises(ValueError, match="not of the form chrom:start-end:strand"):
        junction_coordinates(pd.DataFrame(index=["junction_7"]))


def test_de_table_gets_gene_names_and_the_common_call_name(mdata):
    genes = mdata["rna"].var_names[:4].astype(str)
    table = pd.DataFrame(
        {
            "contrast": "a",
            "gene_id": genes,
            "proba_de": [0.9, 0.1, 0.5, 0.99],
            "is_de_fdr_0.05": [True, False, False, True],
            "lfc_mean": [1.0, 0.0, 0.2, -2.0],
        }
    )
    out = annotate_de_table(mdata, table)
    assert list(out.columns[:3]) == ["contrast", "gene_id", "gene_name"]
    assert out["gene_name"].tolist() == mdata["rna"].var.loc[genes, "gene_name"].tolist()
    assert "is_de_fdr" in out.columns and "is_de_fdr_0.05" not in out.columns
    assert out["is_de_fdr"].tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="several FDR call columns"):
        rename_call_columns(table.assign(**{"is_de_fdr_0.1": False}), "de")


@needs_shared
def test_coordinates_of_real_starsolo_junctions():
    """STARsolo features.tsv (1-based intron, annotated 0/1) → the table columns, value for value."""
    from splicevi.data.readers_junctions import read_starsolo_sj

    adata = read_starsolo_sj(SPLIKIT / "Solo.out" / "SJ" / "raw")
    coords = junction_coordinates(adata.var)
    features = pd.read_csv(SPLIKIT / "Solo.out" / "SJ" / "raw" / "features.tsv", sep="\t", header=None)
    key = features[0].astype(str) + ":" + features[1].astype(str) + "-" + features[2].astype(str)
    annotated = pd.Series(features[5].to_numpy() == 1, index=key)
    short = coords["chrom"] + ":" + coords["start"].astype(str) + "-" + coords["end"].astype(str)
    assert short.isin(annotated.index).all()
    assert (coords["annotated"].to_numpy(dtype=bool) == annotated.loc[short.to_numpy()].to_numpy()).all()
    assert coords["annotated"].any() and (coords["start"] < coords["end"]).all()


def test_api_ds_table_gets_the_workflow_columns():
    """annotate_ds gives a model.differential_splicing-style table the columns of the workflow's TSVs."""
    from splicevi.data import simulate
    from splicevi.tl.annotate import EVENT_COLUMNS, JUNCTION_COLUMNS, annotate_ds

    mdata = simulate(n_cells=40, n_genes=10, n_events=8, n_types=2, seed=0).to_mudata()
    var = mdata["splicing"].var
    api = pd.DataFrame(
        {"proba_ds": 0.5, "effect_size": 0.1, "is_ds_fdr_0.05": False}, index=var.index.astype(str)
    )
    out = annotate_ds(mdata, api)
    assert list(out.columns[: 1 + len(JUNCTION_COLUMNS)]) == ["junction_id", *JUNCTION_COLUMNS]
    assert "is_ds_fdr" in out.columns and len(out) == len(api)
    assert (
        out["chrom"] + ":" + out["start"].astype(str) + "-" + out["end"].astype(str) + ":" + out["strand"]
        == out["junction_id"]
    ).all()
    events = pd.DataFrame(
        {"proba_ds": 0.5}, index=pd.Index(var["event_id"].astype(str).unique(), name="event_id")
    )
    ev = annotate_ds(mdata, events)
    assert list(ev.columns[: 1 + len(EVENT_COLUMNS)]) == ["event_id", *EVENT_COLUMNS]
