"""Junction and gene readers: real public data and hand-made files of every supported format."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from data_fixtures import SCASL, SPLIKIT, junc_line, needs_shared, regtools_line, sj_line, write_text
from splicevi.data._tables import InputError
from splicevi.data.barcodes import apply_allowlist, match_cells
from splicevi.data.readers_genes import read_genes
from splicevi.data.readers_junctions import read_junctions


# ------------------------------------------------------------------------------ real data
@needs_shared
def test_starsolo_real_10x():
    a = read_junctions(SPLIKIT, progress=False)
    assert a.shape == (4120, 915)
    assert sp.isspmatrix_csr(a.X) or sp.issparse(a.X)
    assert a.X.nnz == 637_089
    # Column 7 of features.tsv is the matrix row sum in this data: the reader must agree.
    feats = pd.read_csv(SPLIKIT / "Solo.out/SJ/raw/features.tsv", sep="\t", header=None)
    ids = (
        feats[0]
        + ":"
        + feats[1].astype(str)
        + "-"
        + feats[2].astype(str)
        + ":"
        + feats[3].map({1: "+", 2: "-"})
    )
    np.testing.assert_array_equal(a.var.loc[ids.to_numpy(), "total_reads"].to_numpy(), feats[6].to_numpy())
    assert int((a.var["total_reads"] == 0).sum()) == 227  # empty junction rows are kept
    assert set(a.var["strand"]) <= {"+", "-"}


@needs_shared
def test_starsolo_broken_symlink_uses_run_sj_out_tab(tmp_path):
    raw = tmp_path / "run" / "Solo.out" / "SJ" / "raw"
    raw.mkdir(parents=True)
    for name in ("matrix.mtx", "barcodes.tsv"):
        os.symlink((SPLIKIT / "Solo.out/SJ/raw" / name).resolve(), raw / name)
    os.symlink(
        "../../../SJ.out.tab", raw / "features.tsv"
    )  # STARsolo's link, broken until the run's file exists
    with pytest.raises(InputError, match="SJ.out.tab"):
        read_junctions(tmp_path / "run", "starsolo", progress=False)
    os.symlink((SPLIKIT / "SJ.out.tab").resolve(), tmp_path / "run" / "SJ_copy.tab")
    (tmp_path / "run" / "SJ.out.tab").write_bytes((SPLIKIT / "SJ.out.tab").read_bytes())
    (raw / "features.tsv").unlink()
    os.symlink(
        "/nonexistent/SJ.out.tab", raw / "features.tsv"
    )  # broken absolute link: found next to Solo.out
    a = read_junctions(tmp_path / "run", "auto", progress=False)
    b = read_junctions(SPLIKIT, progress=False)
    assert a.shape == b.shape
    assert (a.var_names == b.var_names).all()
    assert (a.X != b.X).nnz == 0


@needs_shared
def test_scasl_junc_real():
    a = read_junctions(SCASL / "junc", progress=False)
    assert a.shape == (34, 71_226)
    # First line of SRR7666346.junc: chr1 196742051 196743451 . 69 + (0-based start → 1-based 196742052).
    assert a["SRR7666346", "chr1:196742052-196743451:+"].X.toarray()[0, 0] == 69
    assert (a.var["motif"] == -1).all() and (a.var["annotated"] == -1).all()


@needs_shared
def test_scasl_sj_out_tab_real():
    a = read_junctions(SCASL / "sj_out_tab", progress=False)
    assert a.shape == (37, 168_462)
    assert "SRR7667417SJ" in a.obs_names  # cell id = file stem without .out.tab (as in the labels table)
    # First line of SRR7667417SJ.out.tab: chr1 15039 15795 strand 2 motif 2 annotated 1, 0 unique reads.
    v = a.var.loc["chr1:15039-15795:-"]
    assert (v["motif"], v["annotated"]) == (2, 1)
    # 0 unique reads in that cell: no stored entry (counts are unique reads by default).
    assert a["SRR7667417SJ", "chr1:15039-15795:-"].X.nnz == 0


@needs_shared
def test_same_junction_same_id_junc_vs_sj_out_tab():
    a = read_junctions(SCASL / "junc", progress=False)
    b = read_junctions(SCASL / "sj_out_tab", progress=False)
    shared = a.var_names.intersection(b.var_names)
    # Different cells of one tissue share most introns; an off-by-one start conversion would share none.
    assert len(shared) > 0.5 * a.n_vars


def test_same_junction_same_id_all_formats(tmp_path):
    introns = [("chr2", 1001, 2000, "+", 1), ("chr2", 1001, 2500, "+", 1), ("chrX", 500, 900, "-", 2)]
    sj = write_text(
        tmp_path / "c1SJ.out.tab", [sj_line(c, s, e, 1 if st == "+" else 2, m) for c, s, e, st, m in introns]
    )
    junc = write_text(tmp_path / "c2.junc", [junc_line(c, s, e, 7, st) for c, s, e, st, _ in introns])
    bed = write_text(tmp_path / "c3.bed", [regtools_line(c, s, e, 4, st) for c, s, e, st, _ in introns])
    table = tmp_path / "long.tsv"
    pd.DataFrame(
        [("c4", c, s, e, st, 3) for c, s, e, st, _ in introns],
        columns=["cell", "chrom", "start", "end", "strand", "count"],
    ).to_csv(table, sep="\t", index=False)
    expected = sorted(f"{c}:{s}-{e}:{st}" for c, s, e, st, _ in introns)
    for path, fmt in ((sj, "sj_out_tab"), (junc, "junc"), (bed, "regtools"), (table, "table")):
        a = read_junctions(path, fmt, progress=False)
        assert sorted(a.var_names) == expected, fmt
        assert a.n_obs == 1


def test_cell_sheet_gz_batch_and_strand_inference(tmp_path):
    # Cell 1: SJ.out.tab knows the motif; cell 2: .junc with unknown strand '.' for the same intron.
    write_text(
        tmp_path / "a.junc.gz",
        [junc_line("chr1", 101, 500, 3, "+"), junc_line("chr1", 101, 800, 2, "+")],
        gz=True,
    )
    write_text(tmp_path / "b.junc", [junc_line("chr1", 101, 500, 4, "."), junc_line("chr9", 10, 100, 1, "?")])
    sheet = tmp_path / "sheet.tsv"
    sheet.write_text("cell_id\tpath\tbatch\ncA\ta.junc.gz\tp1\ncB\tb.junc\tp2\n")
    a = read_junctions(sheet, "junc", progress=False)
    assert list(a.obs_names) == ["cA", "cB"]
    assert list(a.obs["batch"]) == ["p1", "p2"]
    # '.' resolved to '+' from the other record of the same intron; chr9 stays unknown.
    assert "chr1:101-500:+" in a.var_names and "chr1:101-500:." not in a.var_names
    assert a["cB", "chr1:101-500:+"].X.toarray()[0, 0] == 4
    assert "chr9:10-100:." in a.var_names
    # The same via --cell-sheet with --junctions pointing at the sheet itself.
    b = read_junctions(sheet, "junc", cell_sheet=sheet, progress=False)
    assert (b.var_names == a.var_names).all()


def test_strand_from_motif(tmp_path):
    p = write_text(
        tmp_path / "x.tsv",
        [
            "cell\tchrom\tstart\tend\tstrand\tcount\tmotif",
            "c1\tchr1\t100\t900\t.\t5\t2",
            "c1\tchr1\t100\t700\t?\t5\t0",
        ],
    )
    a = read_junctions(p, "table", progress=False)
    assert set(a.var_names) == {"chr1:100-900:-", "chr1:100-700:."}


def test_long_table_formats_agree(tmp_path):
    df = pd.DataFrame(
        {
            "cell": ["x", "x", "y"],
            "chrom": ["chr1"] * 3,
            "start": [10, 10, 10],
            "end": [90, 95, 90],
            "strand": ["+"] * 3,
            "count": [1, 2, 3],
        }
    )
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet")
    df.to_csv(tmp_path / "t.tsv.gz", sep="\t", index=False)
    mats = [read_junctions(tmp_path / n, "auto", progress=False) for n in ("t.csv", "t.parquet", "t.tsv.gz")]
    for m in mats[1:]:
        assert (m.var_names == mats[0].var_names).all()
        assert (m.X != mats[0].X).nnz == 0
    assert mats[0].X.sum() == 6


def test_regtools_intron_coordinates(tmp_path):
    # regtools anchors: BED start 79 (0-based), left anchor 21 bases → intron 0-based 100 → 1-based 101.
    p = write_text(tmp_path / "c.bed", ["chr3\t79\t250\tJ\t9\t-\t79\t250\t255,0,0\t2\t21,30\t0,141"])
    a = read_junctions(p, "regtools", progress=False)
    assert list(a.var_names) == ["chr3:101-220:-"]


# ------------------------------------------------------------------------------ genes
def _write_gene_mtx(folder, counts, genes, barcodes):
    from splicevi.data.simulate_files import _write_mtx

    folder.mkdir(parents=True, exist_ok=True)
    _write_mtx(folder / "matrix.mtx", sp.csr_matrix(counts).T)
    (folder / "barcodes.tsv").write_text("".join(b + "\n" for b in barcodes))
    (folder / "features.tsv").write_text("".join(f"{g}\tname_{g}\tGene Expression\n" for g in genes))


def test_gene_readers_agree(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.poisson(2, size=(6, 4)).astype(np.float32)
    genes = [f"G{i}" for i in range(4)]
    cells = [f"AAAC{i}" for i in range(6)]
    _write_gene_mtx(tmp_path / "run" / "Solo.out" / "Gene" / "filtered", counts, genes, cells)
    a = read_genes(tmp_path / "run", "auto", progress=False)
    np.testing.assert_array_equal(a.X.toarray(), counts)
    assert list(a.var["gene_name"]) == [f"name_{g}" for g in genes]
    # 10x v3 .h5 with one non-gene feature that must be dropped.
    x = sp.csc_matrix(np.vstack([counts.T, np.ones((1, 6))]))
    with h5py.File(tmp_path / "m.h5", "w") as f:
        g = f.create_group("matrix")
        g["data"], g["indices"], g["indptr"], g["shape"] = x.data, x.indices, x.indptr, np.array(x.shape)
        g["barcodes"] = np.array(cells, dtype="S")
        feat = g.create_group("features")
        feat["id"] = np.array(genes + ["AB1"], dtype="S")
        feat["name"] = np.array([f"name_{i}" for i in genes] + ["ab"], dtype="S")
        feat["feature_type"] = np.array(["Gene Expression"] * 4 + ["Antibody Capture"], dtype="S")
    b = read_genes(tmp_path / "m.h5", "auto", progress=False)
    np.testing.assert_array_equal(b.X.toarray(), counts)
    ad.AnnData(
        X=sp.csr_matrix(counts), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=genes)
    ).write_h5ad(tmp_path / "g.h5ad")
    c = read_genes(tmp_path / "g.h5ad", "auto", progress=False)
    np.testing.assert_array_equal(c.X.toarray(), counts)
    # STAR ReadsPerGene.out.tab per cell.
    rows = []
    for i, cell in enumerate(cells):
        lines = [
            "N_unmapped\t1\t1\t1",
            "N_multimapping\t0\t0\t0",
            "N_noFeature\t0\t0\t0",
            "N_ambiguous\t0\t0\t0",
        ]
        lines += [f"{g}\t{int(counts[i, j])}\t0\t{int(counts[i, j])}" for j, g in enumerate(genes)]
        write_text(tmp_path / "rpg" / f"{cell}.tab", lines)
        rows.append(f"{cell}\trpg/{cell}.tab")
    write_text(tmp_path / "genes_sheet.tsv", ["cell_id\tpath"] + rows)
    d = read_genes(tmp_path / "genes_sheet.tsv", "auto", progress=False)
    np.testing.assert_array_equal(d.X.toarray(), counts)
    assert list(d.obs_names) == cells


def test_h5ad_normalised_rejected(tmp_path):
    ad.AnnData(X=np.full((3, 2), 0.5, dtype=np.float32)).write_h5ad(tmp_path / "n.h5ad")
    with pytest.raises(InputError, match="counts"):
        read_genes(tmp_path / "n.h5ad", "h5ad", progress=False)


def _adata(cells, n=3):
    return ad.AnnData(
        X=sp.csr_matrix(np.ones((len(cells), n), dtype=np.float32)), obs=pd.DataFrame(index=cells)
    )


def test_barcode_matching_reports_overlap_and_suffix():
    j, g, info = match_cells(_adata(["A", "B", "C", "D"]), _adata(["C", "A", "E"]))
    assert list(j.obs_names) == ["A", "C"] and list(g.obs_names) == ["A", "C"]
    assert (info.n_common, info.n_junction_only, info.n_gene_only) == (2, 2, 1)
    j, g, info = match_cells(_adata(["AAAC", "GGGT"]), _adata(["AAAC-1", "TTTT-1"]))
    assert info.normalised and info.n_common == 1 and list(g.obs_names) == ["AAAC"]
    with pytest.raises(InputError, match="no cell barcode in common"):
        match_cells(_adata(["A", "B"]), _adata(["X", "Y"]), genes_source="genes.h5ad")


def test_barcode_allowlist(tmp_path):
    p = write_text(tmp_path / "bc.tsv", ["B", "C", "Z"])
    sub, absent = apply_allowlist(_adata(["A", "B", "C"]), p)
    assert list(sub.obs_names) == ["B", "C"] and absent == 1
    with pytest.raises(InputError, match="none of the"):
        apply_allowlist(_adata(["Q"]), p)
