"""Bad input: every malformed file fails with a message naming the file, the line and the fix,
and the command line leaves no output behind."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from data_fixtures import junc_line, sj_line, tiny_simulation, write_text
from splicevi.cli.main import main
from splicevi.data._tables import InputError
from splicevi.data.readers_junctions import read_junctions

GOOD = sj_line("chr1", 100, 200)

# (name, format, file name, lines, expected text, expected line)
CASES = [
    ("truncated line", "sj_out_tab", "cSJ.out.tab", [GOOD, "chr1\t100\t300\t1\t1"], "missing field", 2),
    ("extra column", "sj_out_tab", "cSJ.out.tab", [GOOD, GOOD + "\t7"], "wrong number of columns", 2),
    ("wrong column count", "sj_out_tab", "cSJ.out.tab", ["chr1\t100\t200\t1\t1\t1\t5\t0"] * 2, "8 column(s)", 1),
    ("non-integer count", "sj_out_tab", "cSJ.out.tab", [GOOD, GOOD, sj_line("chr1", 5, 90, unique="3.5")],
     "not an integer", 3),
    ("text count", "sj_out_tab", "cSJ.out.tab", [sj_line("chr1", 5, 90, unique="many")], "not an integer", 1),
    ("negative count", "sj_out_tab", "cSJ.out.tab", [GOOD, sj_line("chr1", 5, 90, unique=-2)], "negative", 2),
    ("bad strand code", "sj_out_tab", "cSJ.out.tab", [sj_line("chr1", 5, 90, strand=5)], "strand", 1),
    ("end before start", "sj_out_tab", "cSJ.out.tab", [GOOD, sj_line("chr1", 500, 90)], "start", 2),
    ("empty file", "sj_out_tab", "cSJ.out.tab", [], "empty", 1),
    ("junc wrong columns", "junc", "c.junc", [junc_line("chr1", 10, 90), "chr1\t9\t90\t.\t5"], "missing field", 2),
    ("junc negative", "junc", "c.junc", [junc_line("chr1", 10, 90, count=-1)], "negative", 1),
    ("junc bad strand", "junc", "c.junc", [junc_line("chr1", 10, 90, strand="x")], "strand", 1),
    ("regtools 6 columns", "regtools", "c.bed", [junc_line("chr1", 10, 90)], "6 column(s)", 1),
    ("table non-integer", "table", "t.tsv", ["cell\tchrom\tstart\tend\tstrand\tcount", "a\tchr1\t1\t90\t+\t2",
                                             "a\tchr1\t1\t99\t+\t2.5"], "not an integer", 3),
    ("table missing column", "table", "t.tsv", ["cell\tchrom\tstart\tend\tcount", "a\tchr1\t1\t90\t2"],
     "missing column", 1),
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
    write_text(raw / "matrix.mtx", ["%%MatrixMarket matrix coordinate integer general", "%", "2 2 3", "1 1 4",
                                    "2 2 1"])
    with pytest.raises(InputError, match=r"2 entries where the size line says 3"):
        read_junctions(tmp_path, "starsolo", progress=False)
    write_text(raw / "matrix.mtx", ["%%MatrixMarket matrix coordinate integer general", "2 2 2", "1 1 4", "3 2 1"])
    with pytest.raises(InputError, match=r"line 4.*row index 3"):
        read_junctions(tmp_path, "starsolo", progress=False)


def test_sample_sheet_errors(tmp_path):
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
    rc = main(["ingest", "--junctions", str(bad), "--junction-format", "sj_out_tab",
               "--out-junctions", str(out / "junctions.h5ad")])
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
    rc = main(["ingest", "--junctions", str(tmp_path / "sim"), "--genes", str(genes), "--out-junctions",
               str(out / "j.h5ad"), "--out-genes", str(out / "g.h5ad"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 3 and "no cell barcode in common" in err and str(genes) in err
    assert not (out / "j.h5ad").exists() and not (out / "g.h5ad").exists()


def test_cli_gtf_chr_mismatch_leaves_nothing(tmp_path, capsys):
    cells = [write_text(tmp_path / f"c{i}SJ.out.tab", [sj_line("chr1", 100, 200, unique=9),
                                                      sj_line("chr1", 100, 300, unique=9)]) for i in range(3)]
    assert len(cells) == 3
    rc = main(["ingest", "--junctions", str(tmp_path), "--junction-format", "sj_out_tab",
               "--out-junctions", str(tmp_path / "j.h5ad"), "--no-progress"])
    assert rc == 0
    gtf = write_text(tmp_path / "ens.gtf", ['1\tt\texon\t50\t99\t.\t+\t.\tgene_id "G1"; transcript_id "T1";'])
    rc = main(["atse", "--junctions", str(tmp_path / "j.h5ad"), "--gtf", str(gtf), "--out", str(tmp_path / "e.tsv")])
    err = capsys.readouterr().err
    assert rc == 3 and "ens.gtf, line 1" in err and "chr" in err
    assert not (tmp_path / "e.tsv").exists() and not (tmp_path / "e.summary.json").exists()


def test_empty_events_table(tmp_path):
    from splicevi.data.assemble import read_events

    p = tmp_path / "e.tsv"
    pd.DataFrame(columns=["junction_id", "event_id"]).to_csv(p, sep="\t", index=False)
    with pytest.raises(InputError, match="no events"):
        read_events(p)
