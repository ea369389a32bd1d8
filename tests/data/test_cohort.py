"""Cohort input: the sample sheet (validation, clear errors) and the merge of per-sample ingest outputs."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from splicevi.cli.main import main
from splicevi.data.merge import merge_genes, merge_junctions
from splicevi.data.samples import SampleSheetError, read_cohort_sheet


def _sheet(path, rows, header=("sample", "junctions", "condition")):
    path.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("a", "x"), ("a", "x")], "line 3, column 'sample': duplicate sample id 'a' (also on line 2)"),
        ([("a", "x"), ("b_1", "x")], "line 3, column 'sample': id 'b_1' is not allowed"),
        ([("a;rm -rf", "x")], "line 2, column 'sample': id 'a;rm -rf' is not allowed"),
        ([("a", "missing/dir")], "line 2, column 'junctions': path not found: 'missing/dir'"),
        ([("a", "")], "line 2, column 'junctions': empty"),
    ],
)
def test_bad_sheet_names_sheet_row_and_column(tmp_path, monkeypatch, rows, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").mkdir()
    sheet = _sheet(tmp_path / "s.tsv", [(*r, "A") for r in rows])
    with pytest.raises(SampleSheetError) as err:
        read_cohort_sheet(sheet)
    assert str(sheet) in str(err.value) and message in str(err.value)


def test_sheet_without_junctions_column(tmp_path):
    sheet = _sheet(tmp_path / "s.tsv", [("a", "A")], header=("sample", "condition"))
    with pytest.raises(SampleSheetError, match="line 1: no 'junctions' column"):
        read_cohort_sheet(sheet, check_paths=False)


def _adata(barcodes, junctions, counts):
    var = pd.DataFrame({"chrom": [j.split(":")[0] for j in junctions]}, index=junctions)
    return ad.AnnData(
        X=sp.csr_matrix(np.asarray(counts, dtype=np.float32)), obs=pd.DataFrame(index=barcodes), var=var
    )


def test_merge_unions_identical_junctions_and_fills_zeros(tmp_path):
    sheet = read_cohort_sheet(
        _sheet(tmp_path / "s.tsv", [("s1", "x", "A"), ("s2", "x", "B")]), check_paths=False
    )
    a = _adata(["AAA", "CCC"], ["chr1:10-20:+", "chr1:10-30:+"], [[1, 2], [0, 3]])
    b = _adata(["AAA"], ["chr1:10-30:+", "chr2:5-9:-"], [[4, 5]])
    merged, prov = merge_junctions([("s1", a), ("s2", b)], sheet)
    assert list(merged.obs_names) == ["s1_AAA", "s1_CCC", "s2_AAA"]  # the colliding barcode stays two cells
    assert list(merged.var_names) == ["chr1:10-20:+", "chr1:10-30:+", "chr2:5-9:-"]
    assert sp.issparse(merged.X)
    np.testing.assert_array_equal(merged.X.toarray(), [[1, 2, 0], [0, 3, 0], [0, 4, 5]])
    assert merged.var["total_reads"].tolist() == [1, 9, 5] and merged.var["n_cells"].tolist() == [1, 3, 1]
    assert merged.obs["condition"].tolist() == ["A", "A", "B"]
    assert merged.obs["batch"].tolist() == ["s1", "s1", "s2"]  # no batch column: the sample
    assert prov["samples"]["s2"]["n_cells"] == 1 and prov["separator"] == "_"


def test_merge_genes_needs_the_same_gene_set(tmp_path):
    sheet = read_cohort_sheet(
        _sheet(tmp_path / "s.tsv", [("s1", "x", "A"), ("s2", "x", "B")]), check_paths=False
    )
    a = _adata(["AAA"], ["g1", "g2"], [[1, 2]])
    b = _adata(["AAA"], ["g2", "g1"], [[3, 4]])
    merged, _ = merge_junctions([("s1", a), ("s2", b)], sheet)
    genes = merge_genes([("s1", a), ("s2", b)], merged.obs)
    np.testing.assert_array_equal(
        genes.X.toarray(), [[1, 2], [4, 3]]
    )  # reordered to the first sample's genes
    c = _adata(["AAA"], ["g1", "g3"], [[3, 4]])
    with pytest.raises(ValueError, match="samples 's1' and 's2' have different gene sets"):
        merge_genes([("s1", a), ("s2", c)], merged.obs)


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    """Three simulated STARsolo channels with the same barcodes (collisions), ingested one by one."""
    work = tmp_path_factory.mktemp("cohort")
    rows = []
    for i, condition in zip((1, 2, 3), ("control", "treated", "treated"), strict=True):
        sim = work / f"ch{i}"
        assert (
            main(
                [
                    "simulate",
                    "--out",
                    str(sim),
                    "--format",
                    "starsolo",
                    "--n-cells",
                    "50",
                    "--n-genes",
                    "30",
                    "--n-events",
                    "20",
                    "--n-types",
                    "2",
                    "--seed",
                    "1",
                    "--no-progress",
                ]
            )
            == 0
        )
        gene = sim / "Solo.out" / "Gene" / "filtered"
        assert (
            main(
                [
                    "ingest",
                    "--junctions",
                    str(sim / "Solo.out" / "SJ" / "raw"),
                    "--genes",
                    str(gene),
                    "--barcodes",
                    str(gene / "barcodes.tsv"),
                    "--out-junctions",
                    str(work / f"j{i}.h5ad"),
                    "--out-genes",
                    str(work / f"g{i}.h5ad"),
                    "--no-progress",
                ]
            )
            == 0
        )
        rows.append((f"ch{i}", str(sim / "Solo.out" / "SJ" / "raw"), condition))
    return work, _sheet(work / "samples.tsv", rows)


def test_merge_cli_three_channels_with_colliding_barcodes(channels):
    work, sheet = channels
    parts = [ad.read_h5ad(work / f"j{i}.h5ad") for i in (1, 2, 3)]
    assert len(set(parts[0].obs_names) & set(parts[1].obs_names)) > 40  # the barcodes collide
    out = work / "merged"
    rc = main(
        [
            "merge",
            "--sample-sheet",
            str(sheet),
            "--junctions",
            *[str(work / f"j{i}.h5ad") for i in (1, 2, 3)],
            "--genes",
            *[str(work / f"g{i}.h5ad") for i in (1, 2, 3)],
            "--out-junctions",
            str(out / "j.h5ad"),
            "--out-genes",
            str(out / "g.h5ad"),
            "--out-annotations",
            str(out / "cells.tsv"),
        ]
    )
    assert rc == 0
    merged = ad.read_h5ad(out / "j.h5ad")
    genes = ad.read_h5ad(out / "g.h5ad")
    assert merged.n_obs == sum(p.n_obs for p in parts) and merged.obs_names.is_unique
    assert list(genes.obs_names) == list(merged.obs_names)
    # same simulation seed: identical coordinates, one column each, counts summed over the channels
    assert merged.n_vars == parts[0].n_vars
    assert merged.var["total_reads"].sum() == sum(int(p.X.sum()) for p in parts)
    assert merged.obs.groupby("condition", observed=True).size().to_dict() == {
        "control": parts[0].n_obs,
        "treated": parts[1].n_obs + parts[2].n_obs,
    }
    assert set(merged.uns["splicevi_merge"]["samples"]) == {"ch1", "ch2", "ch3"}
    table = pd.read_csv(out / "cells.tsv", sep="\t", index_col=0)
    assert list(table.index) == list(merged.obs_names) and {"sample", "condition", "batch"} <= set(
        table.columns
    )


def test_merge_cli_wrong_number_of_files_is_a_usage_error(channels, capsys):
    work, sheet = channels
    rc = main(
        [
            "merge",
            "--sample-sheet",
            str(sheet),
            "--junctions",
            str(work / "j1.h5ad"),
            "--out-junctions",
            str(work / "bad.h5ad"),
        ]
    )
    assert rc == 2 and "1 file(s) for 3 sample(s)" in capsys.readouterr().err
    assert not (work / "bad.h5ad").exists()


SAMPLES_SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "samples.schema.yaml"


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (
            ("sample", "junctions", "junction_format"),
            ("a", "x", "bam"),
            "line 2, column 'junction_format': 'bam' is not one of",
        ),
        (
            ("sample", "junctions", "gene_format"),
            ("a", "x", "loom"),
            "line 2, column 'gene_format': 'loom' is not one of",
        ),
    ],
)
def test_sheet_rows_are_checked_against_the_schema(tmp_path, header, row, message):
    sheet = _sheet(tmp_path / "s.tsv", [row], header=header)
    read_cohort_sheet(sheet, check_paths=False)  # without the schema the value passes here
    with pytest.raises(SampleSheetError) as err:
        read_cohort_sheet(sheet, check_paths=False, schema=SAMPLES_SCHEMA)
    assert str(sheet) in str(err.value) and message in str(err.value) and "allowed: auto" in str(err.value)


def test_a_valid_sheet_passes_the_schema(tmp_path):
    sheet = _sheet(tmp_path / "s.tsv", [("ch-1", "x", "A")])
    out = read_cohort_sheet(sheet, check_paths=False, schema=SAMPLES_SCHEMA)
    assert list(out.index) == ["ch-1"] and out.loc["ch-1", "condition"] == "A"
