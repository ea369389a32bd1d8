"""Bad input fails with a message naming the file, the line and the fix.

The command line leaves no output behind.
"""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from data_fixtures import junc_line, sj_line, tiny_simulation, write_text
from splicevi.cli.main import main
from splicevi.data._tables import InputError
from splicevi.data.readers_junctions import read_junctions

from conftest import SHARED_DATA

GOOD = sj_line("chr1", 100, 200)

# (name, format, file name, lines, expected text, expected line)
CASES = [
    ("truncated line", "sj_out_tab", "cSJ.out.tab", [GOOD, "chr1\t100\t300\t1\t1"], "missing field", 2),
    ("extra column", "sj_out_tab", "cSJ.out.tab", [GOOD, GOOD + "\t7"], "wrong number of columns", 2),
    (
        "wrong column count",
        "sj_out_tab",
        "cSJ.out.tab",
        ["chr1\t100\t200\t1\t1\t1\t5\t0"] * 2,
        "8 column(s)",
        1,
    ),
    (
        "non-integer count",
        "sj_out_tab",
        "cSJ.out.tab",
        [GOOD, GOOD, sj_line("chr1", 5, 90, unique="3.5")],
        "not an integer",
        3,
    ),
    ("text count", "sj_out_tab", "cSJ.out.tab", [sj_line("chr1", 5, 90, unique="many")], "not an integer", 1),
    ("negative count", "sj_out_tab", "cSJ.out.tab", [GOOD, sj_line("chr1", 5, 90, unique=-2)], "negative", 2),
    ("bad strand code", "sj_out_tab", "cSJ.out.tab", [sj_line("chr1", 5, 90, strand=5)], "strand", 1),
    ("end before start", "sj_out_tab", "cSJ.out.tab", [GOOD, sj_line("chr1", 500, 90)], "start", 2),
    ("empty file", "sj_out_tab", "cSJ.out.tab", [], "empty", 1),
    (
        "NUL byte in a count",
        "sj_out_tab",
        "cSJ.out.tab",
        [GOOD, GOOD, "chr1\t5\t90\t1\t1\t1\t5\x007\t0\t30"],
        "NUL byte",
        3,
    ),
    (
        "NUL byte in a table",
        "table",
        "t.tsv",
        ["cell\tchrom\tstart\tend\tstrand\tcount", "a\tchr1\t1\t90\t+\t2\x009"],
        "NUL byte",
        2,
    ),
    (
        "junc wrong columns",
        "junc",
        "c.junc",
        [junc_line("chr1", 10, 90), "chr1\t9\t90\t.\t5"],
        "missing field",
        2,
    ),
    ("junc negative", "junc", "c.junc", [junc_line("chr1", 10, 90, count=-1)], "negative", 1),
    ("junc bad strand", "junc", "c.junc", [junc_line("chr1", 10, 90, strand="x")], "strand", 1),
    ("regtools 6 columns", "regtools", "c.bed", [junc_line("chr1", 10, 90)], "6 column(s)", 1),
    (
        "table non-integer",
        "table",
        "t.tsv",
        ["cell\tchrom\tstart\tend\tstrand\tcount", "a\tchr1\t1\t90\t+\t2", "a\tchr1\t1\t99\t+\t2.5"],
        "not an integer",
        3,
    ),
    (
        "table missing column",
        "table",
        "t.tsv",
        ["cell\tchrom\tstart\tend\tcount", "a\tchr1\t1\t90\t2"],
        "missing column",
        1,
    ),
]


@pytest.fixture
def tiny_sim():
    """A tiny simulation (fast): 80 cells, 40 genes, 25 events."""
    return tiny_simulation()


@pytest.mark.parametrize("name,fmt,fname,lines,text,line", CASES, ids=[c[0] for c in CASES])
def test_bad_file_message(tmp_path, name, fmt, fname, lines, text, line):
    path = tmp_path / fname
    if lines:
        write_text(path, lines)
    else:
        path.write_text("")
    with pytest.raises(InputError) as err:
        read_junctions(path, fmt, progress=False)
    msg = str(err.value)
    assert str(path) in msg
    assert text in msg
    assert f"line {line}" in msg
    assert "Fix:" in msg


def test_truncated_gzip(tmp_path):
    path = tmp_path / "cSJ.out.tab.gz"
    data = gzip.compress(("\n".join([GOOD] * 2000) + "\n").encode())
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as err:
        read_junctions(path, "sj_out_tab", progress=False)
    assert str(path) in str(err.value)


def test_truncated_mtx(tmp_path):
    raw = tmp_path / "Solo.out" / "SJ" / "raw"
    write_text(raw / "features.tsv", [GOOD, sj_line("chr1", 100, 300)])
    write_text(raw / "barcodes.tsv", ["AAA", "CCC"])
    write_text(
        raw / "matrix.mtx",
        ["%%MatrixMarket matrix coordinate integer general", "%", "2 2 3", "1 1 4", "2 2 1"],
    )
    with pytest.raises(InputError, match=r"2 entries where the size line says 3"):
        read_junctions(tmp_path, "starsolo", progress=False)
    write_text(
        raw / "matrix.mtx", ["%%MatrixMarket matrix coordinate integer general", "2 2 2", "1 1 4", "3 2 1"]
    )
    with pytest.raises(InputError, match=r"line 4.*row index 3"):
        read_junctions(tmp_path, "starsolo", progress=False)


def test_cell_sheet_errors(tmp_path):
    write_text(tmp_path / "a.junc", [junc_line("chr1", 10, 90)])
    sheet = write_text(tmp_path / "s.tsv", ["cell_id\tpath", "a\ta.junc", "a\ta.junc"])
    with pytest.raises(InputError, match="listed twice.*line 3|line 3.*listed twice"):
        read_junctions(sheet, "junc", progress=False)
    sheet = write_text(tmp_path / "s.tsv", ["cell_id\tpath", "a\ta.junc", "b\tmissing.junc"])
    with pytest.raises(InputError, match="line 3.*missing.junc"):
        read_junctions(sheet, "junc", progress=False)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_cli_bad_input_leaves_nothing(tmp_path, capsys):
    bad = write_text(tmp_path / "in" / "cSJ.out.tab", [GOOD, sj_line("chr1", 5, 90, unique=-2)])
    out = tmp_path / "out"
    out.mkdir()
    rc = main(
        [
            "ingest",
            "--junctions",
            str(bad),
            "--junction-format",
            "sj_out_tab",
            "--out-junctions",
            str(out / "junctions.h5ad"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 3  # a data error
    assert "cSJ.out.tab, line 2" in err and "negative" in err and "Fix:" in err
    assert not (out / "junctions.h5ad").exists() and _leftovers(out) == []


def test_cli_no_barcode_overlap(tmp_path, capsys, tiny_sim):
    from splicevi.data.simulate_files import write_simulation

    write_simulation(tiny_sim, tmp_path / "sim", "starsolo", progress=False)
    genes = tmp_path / "sim" / "Solo.out" / "Gene" / "filtered"
    bc = genes / "barcodes.tsv"
    bc.write_text("".join(f"OTHER{i}\n" for i in range(tiny_sim.obs.shape[0])))
    out = tmp_path / "out"
    rc = main(
        [
            "ingest",
            "--junctions",
            str(tmp_path / "sim"),
            "--genes",
            str(genes),
            "--out-junctions",
            str(out / "j.h5ad"),
            "--out-genes",
            str(out / "g.h5ad"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 3 and "no cell barcode in common" in err and str(genes) in err
    assert not (out / "j.h5ad").exists() and not (out / "g.h5ad").exists()


def test_cli_gtf_chr_mismatch_leaves_nothing(tmp_path, capsys):
    cells = [
        write_text(
            tmp_path / f"c{i}SJ.out.tab",
            [sj_line("chr1", 100, 200, unique=9), sj_line("chr1", 100, 300, unique=9)],
        )
        for i in range(3)
    ]
    assert len(cells) == 3
    rc = main(
        [
            "ingest",
            "--junctions",
            str(tmp_path),
            "--junction-format",
            "sj_out_tab",
            "--out-junctions",
            str(tmp_path / "j.h5ad"),
            "--no-progress",
        ]
    )
    assert rc == 0
    gtf = write_text(tmp_path / "ens.gtf", ['1\tt\texon\t50\t99\t.\t+\t.\tgene_id "G1"; transcript_id "T1";'])
    rc = main(
        ["atse", "--junctions", str(tmp_path / "j.h5ad"), "--gtf", str(gtf), "--out", str(tmp_path / "e.tsv")]
    )
    err = capsys.readouterr().err
    assert rc == 3 and "ens.gtf, line 1" in err and "chr" in err
    assert not (tmp_path / "e.tsv").exists() and not (tmp_path / "e.summary.json").exists()


def test_empty_events_table(tmp_path):
    from splicevi.data.assemble import read_events

    p = tmp_path / "e.tsv"
    pd.DataFrame(columns=["junction_id", "event_id"]).to_csv(p, sep="\t", index=False)
    with pytest.raises(InputError, match="no events"):
        read_events(p)


# --- silent wrong results, now handled or refused ---------------------------------------------------
REAL_SJ = SHARED_DATA / "scasl_tnbc_smartseq2" / "sj_out_tab"


@pytest.mark.skipif(not REAL_SJ.exists(), reason="real data ../shared/data/scasl_tnbc_smartseq2 not present")
def test_mixed_chr_naming_is_harmonized_on_real_cells(tmp_path, capsys):
    """Real cells, one of them rewritten with Ensembl names (1 instead of chr1): same junctions as before."""
    names = sorted(p.name for p in REAL_SJ.iterdir())[:3]
    for name in names:
        (tmp_path / name).write_bytes((REAL_SJ / name).read_bytes())
    plain = read_junctions(tmp_path, "sj_out_tab", progress=False)
    renamed = tmp_path / names[0]
    renamed.write_text("".join(line.removeprefix("chr") for line in renamed.read_text().splitlines(True)))
    mixed = read_junctions(tmp_path, "sj_out_tab", progress=False)
    assert mixed.n_vars == plain.n_vars and list(mixed.var_names) == list(plain.var_names)
    assert (mixed.X != plain.X).nnz == 0
    note = mixed.uns["splicevi_ingest"]
    assert note["chrom_renamed"]["1"] == "chr1" and note["chrom_renamed_records"] > 1000
    out = tmp_path / "j.h5ad"
    assert (
        main(
            [
                "ingest",
                "--junctions",
                str(tmp_path),
                "--junction-format",
                "sj_out_tab",
                "--out-junctions",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "chromosome names harmonized" in capsys.readouterr().out


def test_duplicate_lines_are_summed_and_reported(tmp_path, capsys):
    write_text(
        tmp_path / "aSJ.out.tab",
        [
            sj_line("chr1", 100, 200, unique=4),
            sj_line("chr1", 100, 200, unique=3),
            sj_line("chr1", 100, 300, unique=2),
        ],
    )
    write_text(tmp_path / "bSJ.out.tab", [sj_line("chr1", 100, 200, unique=1)])
    adata = read_junctions(tmp_path, "sj_out_tab", progress=False)
    assert adata.uns["splicevi_ingest"]["duplicate_records"] == 1
    assert adata.uns["splicevi_ingest"]["cells_with_duplicates"] == 1
    assert adata["aSJ", "chr1:100-200:+"].X.toarray().item() == 7
    assert (
        main(
            [
                "ingest",
                "--junctions",
                str(tmp_path),
                "--junction-format",
                "sj_out_tab",
                "--out-junctions",
                str(tmp_path / "j.h5ad"),
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "duplicate junction lines summed" in out and "1 in 1 cell(s), e.g. aSJ" in out


def test_clean_input_has_no_notes(tmp_path):
    write_text(tmp_path / "aSJ.out.tab", [sj_line("chr1", 100, 200), sj_line("2", 100, 300)])
    info = read_junctions(tmp_path, "sj_out_tab", progress=False).uns["splicevi_ingest"]
    assert "chrom_renamed" not in info and "duplicate_records" not in info


@pytest.mark.parametrize("fmt", ["sj_out_tab", "auto"])
def test_folder_with_two_junction_formats_is_refused(tmp_path, fmt):
    write_text(tmp_path / "aSJ.out.tab", [GOOD])
    write_text(tmp_path / "b.junc", [junc_line("chr1", 100, 200)])
    write_text(tmp_path / "aReadsPerGene.out.tab", ["N_unmapped\t1\t1\t1"])  # STAR gene counts: ignored
    write_text(tmp_path / "notes.txt", ["not a junction file"])
    with pytest.raises(
        InputError,
        match=r"1 sj_out_tab file\(s\) and 1 junction file\(s\) of another format "
        r"\(e.g. b.junc\).*Fix: keep one format per folder",
    ):
        read_junctions(tmp_path, fmt, progress=False)
    (tmp_path / "b.junc").unlink()
    assert list(read_junctions(tmp_path, fmt, progress=False).obs_names) == ["aSJ"]


@pytest.mark.parametrize(("row", "problem"), [("b\t", "has an empty path"), ("b\tsub", "is a folder")])
def test_cell_sheet_row_without_a_file(tmp_path, row, problem):
    write_text(tmp_path / "a.junc", [junc_line("chr1", 10, 90)])
    (tmp_path / "sub").mkdir()
    sheet = write_text(tmp_path / "s.tsv", ["cell_id\tpath", "a\ta.junc", row])
    with pytest.raises(
        InputError, match=f"s.tsv, line 3: cell 'b' {problem}|s.tsv, line 3: the path of cell 'b' {problem}"
    ):
        read_junctions(sheet, "junc", progress=False)


@pytest.mark.parametrize(
    ("junction_chrom", "gtf_chrom", "diagnosis", "fix"),
    [
        (
            "1",
            "chr1",
            "the GTF's names have the 'chr' prefix (GENCODE/UCSC) and the junctions' do not",
            "remove the prefix",
        ),
        (
            "chr1",
            "1",
            "the junctions' names have the 'chr' prefix (GENCODE/UCSC) and the GTF's do not",
            "add the prefix",
        ),
    ],
)
def test_gtf_naming_mismatch_diagnosis(tmp_path, capsys, junction_chrom, gtf_chrom, diagnosis, fix):
    for i in range(3):
        write_text(
            tmp_path / f"c{i}SJ.out.tab",
            [sj_line(junction_chrom, 100, 200, unique=9), sj_line(junction_chrom, 100, 300, unique=9)],
        )
    assert (
        main(
            [
                "ingest",
                "--junctions",
                str(tmp_path),
                "--junction-format",
                "sj_out_tab",
                "--out-junctions",
                str(tmp_path / "j.h5ad"),
                "--no-progress",
            ]
        )
        == 0
    )
    gtf = write_text(
        tmp_path / "a.gtf", [f'{gtf_chrom}\tt\texon\t50\t99\t.\t+\t.\tgene_id "G1"; transcript_id "T1";']
    )
    rc = main(
        ["atse", "--junctions", str(tmp_path / "j.h5ad"), "--gtf", str(gtf), "--out", str(tmp_path / "e.tsv")]
    )
    err = capsys.readouterr().err
    assert rc == 3 and diagnosis in err and fix in err
    assert "chrchr" not in err


def test_ds_contrast_of_a_group_with_itself_is_refused(tmp_path, capsys):
    rc = main(
        [
            "ds",
            "--mdata",
            str(tmp_path / "x.h5mu"),
            "--model",
            str(tmp_path / "m"),
            "--contrasts",
            '[{"name": "c", "groupby": "cell_type", "group1": "a", "group2": "a"}]',
            "--out-junctions",
            str(tmp_path / "j.tsv"),
            "--out-events",
            str(tmp_path / "e.tsv"),
        ]
    )
    assert rc == 2
    assert "group1 and group2 are both 'a'" in capsys.readouterr().err
