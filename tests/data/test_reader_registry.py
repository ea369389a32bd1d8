"""An input format is one registry entry: detection, dispatch, CLI and config choices follow it."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from splicevi.data import formats, read_genes, read_junctions
from splicevi.data.readers_junctions import detect_junction_format

REPO = Path(__file__).resolve().parents[2]


def _read_toy_junctions(path) -> pd.DataFrame:
    """``chrom start end strand count`` per line, 1-based intron (a per-cell junction format)."""
    df = pd.read_csv(path, sep=" ", header=None, names=["chrom", "start", "end", "strand", "count"])
    return df.assign(motif=-1, annotated=-1)[
        ["chrom", "start", "end", "strand", "motif", "annotated", "count"]
    ]


def _read_toy_genes(path) -> ad.AnnData:
    """``cell gene count`` per line (a whole-input gene format)."""
    df = pd.read_csv(path, sep=" ", header=None, names=["cell", "gene", "count"])
    cells, genes = pd.Index(sorted(set(df["cell"]))), pd.Index(sorted(set(df["gene"])))
    x = sp.csr_matrix(
        (df["count"].to_numpy(float), (cells.get_indexer(df["cell"]), genes.get_indexer(df["gene"]))),
        shape=(len(cells), len(genes)),
    )
    return ad.AnnData(X=x, obs=pd.DataFrame(index=cells), var=pd.DataFrame({"gene_name": genes}, index=genes))


@pytest.fixture
def toy_formats():
    junctions = formats.register_reader(
        "junctions", formats.Reader("toy_junctions", _read_toy_junctions, suffixes=(".toyj",), per_cell=True)
    )
    genes = formats.register_reader(
        "genes", formats.Reader("toy_genes", _read_toy_genes, suffixes=(".toyg",))
    )
    yield junctions, genes
    formats.JUNCTION_READERS.pop(junctions.name)
    formats.GENE_READERS.pop(genes.name)


def test_registered_formats_are_detected_and_read(tmp_path, toy_formats):
    cells = tmp_path / "cells"
    cells.mkdir()
    (cells / "A.toyj").write_text("chr1 100 200 + 3\nchr1 100 300 + 1\n")
    (cells / "B.toyj.gz").write_bytes(gzip.compress(b"chr1 100 200 + 2\n"))
    assert detect_junction_format(cells) == "toy_junctions"
    assert detect_junction_format(cells / "A.toyj") == "toy_junctions"
    jun = read_junctions(cells, progress=False)
    assert jun.uns["splicevi_ingest"]["format"] == "toy_junctions"
    assert list(jun.obs_names) == ["A", "B"]
    assert list(jun.var_names) == ["chr1:100-200:+", "chr1:100-300:+"]
    np.testing.assert_array_equal(jun.X.toarray(), [[3, 1], [2, 0]])
    one = read_junctions(cells / "A.toyj", progress=False)  # a single per-cell file
    assert list(one.obs_names) == ["A"]

    (tmp_path / "g.toyg").write_text("A G1 5\nB G2 7\n")
    genes = read_genes(tmp_path / "g.toyg", progress=False)
    assert genes.uns["splicevi_ingest"]["gene_format"] == "toy_genes"
    np.testing.assert_array_equal(genes.X.toarray(), [[5, 0], [0, 7]])


def test_registered_formats_are_choices_of_the_cli_and_the_workflow(tmp_path, toy_formats):
    from splicevi.cli._workflow_config import check_config
    from splicevi.cli.main import build_parser
    from splicevi.data.samples import read_cohort_sheet

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["ingest"]
    choices = {a.dest: a.choices for a in sub._actions}
    assert "toy_junctions" in choices["junction_format"] and "toy_genes" in choices["gene_format"]

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = {"input": {"junction_format": "toy_junctions", "gene_format": "toy_genes"}}
    assert check_config(config, schema) == []
    errors = check_config({"input": {"junction_format": "nope"}}, schema)
    assert len(errors) == 1 and "input.junction_format" in errors[0]

    (tmp_path / "x").mkdir()
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"sample\tjunctions\tjunction_format\nS1\t{tmp_path / 'x'}\ttoy_junctions\n")
    rows = read_cohort_sheet(sheet, schema=REPO / "workflow" / "schemas" / "samples.schema.yaml")
    assert rows.loc["S1", "junction_format"] == "toy_junctions"


def test_unknown_format_names_the_registered_ones(tmp_path, toy_formats):
    with pytest.raises(ValueError, match="toy_junctions"):
        read_junctions(tmp_path, "nope")
    with pytest.raises(ValueError, match="toy_genes"):
        read_genes(tmp_path, "nope")
    with pytest.raises(ValueError, match="already registered"):
        formats.register_reader("junctions", formats.Reader("toy_junctions", _read_toy_genes))


def test_builtin_formats_in_detection_order():
    assert formats.format_choices("junctions") == (
        "auto",
        "starsolo",
        "sj_out_tab",
        "junc",
        "regtools",
        "table",
    )
    assert formats.format_choices("genes") == ("auto", "starsolo", "10x_h5", "mtx", "h5ad", "star_counts")
