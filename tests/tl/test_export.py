"""`splicevi export`: LeafCutter counts, BED12 tracks, per-modality .h5ad, each read back and checked."""

from __future__ import annotations

import gzip
from pathlib import Path

import anndata as ad
import mudata as md
import pandas as pd
import pytest

from data_fixtures import SCASL, needs_shared
from model_fixtures import make_results
from splicevi.cli.main import main


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return make_results(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def mdata(results):
    return md.read_h5mu(results)


@pytest.fixture(scope="module")
def ds_tables(results):
    """The DS tables written beside the results (two contrasts, see model_fixtures.write_ds_tables)."""
    return results.parent / "ds" / "ds_junctions.tsv", results.parent / "ds" / "ds_events.tsv"


def read_leafcutter(path):
    """Parse a LeafCutter *_perind.counts file the way LeafCutter's scripts do, strictly."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        header = fh.readline().split()
        assert header[0] == "chrom" and len(header) > 1
        rows = {}
        for line in fh:
            fields = line.split()
            assert len(fields) == len(header), line
            chrom, a, b, clu = fields[0].rsplit(":", 3)
            assert clu.startswith("clu_") and clu.rsplit("_", 1)[1] in "+-"
            ratios = [tuple(map(int, f.split("/"))) for f in fields[1:]]
            assert all(0 <= k <= n for k, n in ratios)
            rows[(chrom, int(a), int(b), clu)] = ratios
    return header[1:], rows


def test_leafcutter_pseudobulk_counts(results, mdata, tmp_path):
    out = tmp_path / "lc_perind.counts.gz"
    assert (
        main(["export", "leafcutter", "--mdata", str(results), "--groupby", "cell_type", "--out", str(out)])
        == 0
    )
    samples, rows = read_leafcutter(out)
    spl = mdata["splicing"]
    assert sorted(samples) == sorted(
        "cell_type_" + mdata.obs["cell_type"].astype(str).unique()
    )  # names say what
    assert len(rows) == spl.n_vars
    k = spl.layers["cell_by_junction_matrix"].toarray()
    n = spl.layers["cell_by_cluster_matrix"].toarray()
    labels = ("cell_type_" + mdata.obs.loc[spl.obs_names, "cell_type"].astype(str)).to_numpy()
    clusters = {}
    for j, (_, row) in enumerate(spl.var.iterrows()):
        key = next(
            key
            for key in rows
            if key[0] == row["chrom"] and key[1] == row["start"] - 1 and key[2] == row["end"] + 1
        )
        assert key[3].endswith("_" + row["strand"])
        clusters.setdefault(key[3], set()).add(row["event_id"])
        for s, (kk, nn) in zip(samples, rows[key], strict=True):
            assert kk == k[labels == s, j].sum() and nn == n[labels == s, j].sum()
    assert all(len(v) == 1 for v in clusters.values())  # one LeafCutter cluster per ATSE
    assert len(clusters) == spl.var["event_id"].nunique()


def test_leafcutter_replicates_and_groups_file(results, mdata, tmp_path):
    """One column per replicate × group, named by both, and the groups file leafcutter_ds reads."""
    out, groups_file = tmp_path / "rep_perind.counts.gz", tmp_path / "groups.txt"
    assert (
        main(
            [
                "export",
                "leafcutter",
                "--mdata",
                str(results),
                "--groupby",
                "leiden",
                "--replicates",
                "sample",
                "--out",
                str(out),
                "--out-groups",
                str(groups_file),
            ]
        )
        == 0
    )
    samples, rows = read_leafcutter(out)
    obs = mdata.obs.loc[mdata["splicing"].obs_names]
    expected = {
        f"{s}.leiden_{g}" for s, g in zip(obs["sample"].astype(str), obs["leiden"].astype(str), strict=True)
    }
    assert set(samples) == expected and len(samples) == len(expected)
    # the groups file: every column of the table once, with its group, whitespace-separated as R reads it
    lines = [line.split() for line in groups_file.read_text().splitlines()]
    assert [s for s, _ in lines] == samples
    assert all(g == s.split(".", 1)[1] for s, g in lines)
    assert {g for _, g in lines} == {f"leiden_{g}" for g in obs["leiden"].astype(str).unique()}
    # replicate columns add up to the pooled group column
    assert (
        main(
            [
                "export",
                "leafcutter",
                "--mdata",
                str(results),
                "--groupby",
                "leiden",
                "--out",
                str(tmp_path / "pooled.counts"),
            ]
        )
        == 0
    )
    pooled_samples, pooled = read_leafcutter(tmp_path / "pooled.counts")
    for key, ratios in rows.items():
        for g, (k, n) in zip(pooled_samples, pooled[key], strict=True):
            parts = [r for s, r in zip(samples, ratios, strict=True) if s.endswith("." + g)]
            assert k == sum(p[0] for p in parts) and n == sum(p[1] for p in parts)


def test_leafcutter_per_cell(results, mdata, tmp_path):
    out = tmp_path / "cells.counts"
    assert main(["export", "leafcutter", "--mdata", str(results), "--per-cell", "--out", str(out)]) == 0
    samples, rows = read_leafcutter(out)
    spl = mdata["splicing"]
    assert samples == list(spl.obs_names)
    first = spl.var.iloc[0]
    key = next(
        key
        for key in rows
        if key[1] == first["start"] - 1 and key[2] == first["end"] + 1 and key[0] == first["chrom"]
    )
    k = spl.layers["cell_by_junction_matrix"][:, 0].toarray().ravel()
    n = spl.layers["cell_by_cluster_matrix"][:, 0].toarray().ravel()
    assert [r[0] for r in rows[key]] == k.astype(int).tolist() and [r[1] for r in rows[key]] == n.astype(
        int
    ).tolist()


def parse_bed12(path) -> list[dict]:
    """A strict BED12 reader (UCSC format definition): every rule checked, records returned as dicts."""
    records = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), start=1):
        fields = line.split("\t")
        assert len(fields) == 12, f"line {lineno}: {len(fields)} fields"
        chrom, start, end, name, score, strand, thick_start, thick_end, rgb, count, sizes, starts = fields
        start, end, thick_start, thick_end, score, count = map(
            int, (start, end, thick_start, thick_end, score, count)
        )
        assert chrom and not any(c.isspace() for c in chrom + name), f"line {lineno}"
        assert 0 <= start < end and 0 <= score <= 1000 and strand in "+-."
        assert start <= thick_start <= thick_end <= end
        assert len(rgb.split(",")) == 3 and all(0 <= int(c) <= 255 for c in rgb.split(","))
        sizes = [int(x) for x in sizes.rstrip(",").split(",")]
        starts = [int(x) for x in starts.rstrip(",").split(",")]
        assert count == len(sizes) == len(starts) >= 1
        assert starts[0] == 0 and starts[-1] + sizes[-1] == end - start, (
            f"line {lineno}: blocks do not span the record"
        )
        assert all(s > 0 for s in sizes)
        assert all(starts[i] + sizes[i] <= starts[i + 1] for i in range(count - 1)), (
            f"line {lineno}: blocks overlap"
        )
        records.append(
            dict(
                chrom=chrom,
                start=start,
                end=end,
                name=name,
                score=score,
                strand=strand,
                rgb=rgb,
                sizes=sizes,
                starts=starts,
            )
        )
    # The same file through a genomics library's BED12 reader (bioframe's schema with typed columns).
    import bioframe

    table = bioframe.read_table(path, schema="bed12")
    assert len(table) == len(records)
    assert table[["chrom", "start", "end", "name", "score", "strand", "blockCount"]].values.tolist() == [
        [r["chrom"], r["start"], r["end"], r["name"], r["score"], r["strand"], len(r["sizes"])]
        for r in records
    ]
    return records


def export_bed(results, table, contrast: str, out) -> list[dict]:
    """Run `splicevi export bed` for one contrast and read the BED12 back."""
    assert (
        main(
            [
                "export",
                "bed",
                "--mdata",
                str(results),
                "--table",
                str(table),
                "--contrast",
                contrast,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    return parse_bed12(out)


def test_bed_of_junctions(results, mdata, ds_tables, tmp_path):
    junctions, _ = ds_tables
    records = export_bed(results, junctions, "type1_vs_type0", tmp_path / "j.bed")
    table = pd.read_csv(junctions, sep="\t")
    table = table[table["contrast"] == "type1_vs_type0"].set_index("junction_id")
    assert len(records) == len(table)
    for r in records:
        # the intron (1-based) is what lies between the two 1-base flanking blocks
        intron_start, intron_end = r["start"] + r["sizes"][0] + 1, r["start"] + r["starts"][1]
        jid = f"{r['chrom']}:{intron_start}-{intron_end}:{r['strand']}"
        assert jid in r["name"].split("|")
        row = table.loc[jid]
        assert r["score"] == round(1000 * row["proba_ds"])
        assert r["rgb"] == (
            "215,48,39"
            if row["is_ds_fdr"] and row["effect_size"] > 0
            else "69,117,180"
            if row["is_ds_fdr"] and row["effect_size"] < 0
            else "150,150,150"
        )
    chroms = [(r["chrom"], r["start"]) for r in records]
    assert chroms == sorted(chroms)


def test_bed_of_events_marks_each_splice_site(results, mdata, ds_tables, tmp_path):
    _, events = ds_tables
    records = export_bed(results, events, "type2_vs_type0", tmp_path / "e.bed")
    var = mdata["splicing"].var
    assert len(records) == var["event_id"].nunique()
    for r in records:
        event = r["name"].split("|")[-2]
        members = var[var["event_id"] == event]
        flanks = sorted(set((members["start"] - 2).tolist()) | set(members["end"].tolist()))
        assert [r["start"] + s for s in r["starts"]] == flanks


def test_bed_needs_a_contrast_when_there_are_several(results, ds_tables, tmp_path, capsys):
    junctions, _ = ds_tables
    out = tmp_path / "x.bed"
    assert main(["export", "bed", "--mdata", str(results), "--table", str(junctions), "--out", str(out)]) == 2
    assert "choose one with --contrast (type1_vs_type0, type2_vs_type0)" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_h5ad_per_modality(results, mdata, tmp_path):
    import scanpy as sc

    assert main(["export", "h5ad", "--mdata", str(results), "--out-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rna.h5ad", "splicing.h5ad"]
    for name in ("rna", "splicing"):
        adata = ad.read_h5ad(tmp_path / f"{name}.h5ad")
        assert adata.shape == mdata[name].shape
        assert (
            adata.obs["leiden"].astype(str).to_numpy()
            == mdata.obs.loc[adata.obs_names, "leiden"].astype(str).to_numpy()
        ).all()
        assert {"X_splicevi", "X_umap"} <= set(adata.obsm)
        assert adata.uns["splicevi"]["connectivities_key"] in adata.obsp
        assert adata.uns["splicevi_provenance"]["cluster"]["key"] == "leiden"
        sc.tl.leiden(adata, neighbors_key="splicevi", key_added="again", flavor="igraph", n_iterations=2)
        assert adata.obs["again"].nunique() >= 2
    spl = ad.read_h5ad(tmp_path / "splicing.h5ad")
    assert (
        spl.layers["cell_by_junction_matrix"] != mdata["splicing"].layers["cell_by_junction_matrix"]
    ).nnz == 0


@needs_shared
def test_real_junc_files_to_leafcutter_and_bed(tmp_path, capsys):
    """Real LeafCutter .junc input (34 Smart-seq2 cells) exports LeafCutter's own introns.

    The exported introns are those LeafCutter itself would name from the same files (start as in the
    .junc, end + 1), with the same reads per cell, and the BED12 records put the intron exactly
    between their two blocks.
    """
    junc = SCASL / "junc"
    for argv in (
        [
            "ingest",
            "--junctions",
            str(junc),
            "--junction-format",
            "junc",
            "--out-junctions",
            str(tmp_path / "j.h5ad"),
            "--no-progress",
        ],
        ["atse", "--junctions", str(tmp_path / "j.h5ad"), "--out", str(tmp_path / "events.tsv")],
        [
            "assemble",
            "--junctions",
            str(tmp_path / "j.h5ad"),
            "--events",
            str(tmp_path / "events.tsv"),
            "--out",
            str(tmp_path / "data.h5mu"),
        ],
    ):
        assert main(argv) == 0, capsys.readouterr().err
    out = tmp_path / "cells_perind.counts.gz"
    assert (
        main(
            ["export", "leafcutter", "--mdata", str(tmp_path / "data.h5mu"), "--per-cell", "--out", str(out)]
        )
        == 0
    )
    samples, rows = read_leafcutter(out)
    assert len(rows) > 100
    by_intron = {(c, a, b, clu.rsplit("_", 1)[1]): ratios for (c, a, b, clu), ratios in rows.items()}
    checked = 0
    for cell in samples[:5]:
        source = pd.read_csv(
            junc / f"{cell}.junc", sep="\t", header=None, names=["chrom", "a", "b", "dot", "n", "strand"]
        )
        source = source.groupby(["chrom", "a", "b", "strand"], as_index=False)["n"].sum()
        col = samples.index(cell)
        for r in source.itertuples():
            key = (r.chrom, r.a, r.b + 1, r.strand)  # what leafcutter_cluster makes of a .junc line
            if key in by_intron:
                assert by_intron[key][col][0] == r.n
                checked += 1
    assert checked > 100
    mdata = md.read_h5mu(tmp_path / "data.h5mu")
    var = mdata["splicing"].var
    table = pd.DataFrame({"junction_id": var.index.astype(str), "proba_ds": 0.5, "effect_size": 0.0})
    assert (
        main(
            [
                "export",
                "bed",
                "--mdata",
                str(tmp_path / "data.h5mu"),
                "--table",
                str(_write(table, tmp_path)),
                "--out",
                str(tmp_path / "real.bed"),
            ]
        )
        == 0
    )
    records = parse_bed12(tmp_path / "real.bed")
    assert len(records) == var.shape[0]
    for r in records[:500]:
        intron = f"{r['chrom']}:{r['start'] + r['sizes'][0] + 1}-{r['start'] + r['starts'][1]}:{r['strand']}"
        assert intron in var.index


def _write(table: pd.DataFrame, folder) -> object:
    path = folder / "ds.tsv"
    table.to_csv(path, sep="\t", index=False)
    return path
