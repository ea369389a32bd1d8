"""ATSE grouping: hand-made events with known answers, filters, GTF genes, and real junction data."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from data_fixtures import SCASL, junction_table, needs_shared, write_text
from splicevi.data._tables import InputError
from splicevi.data.atse import AtseParams, annotate_events, group_atse, site_components
from splicevi.data.gtf import assign_genes, check_chromosomes, read_gtf
from splicevi.data.readers_junctions import read_junctions

NO_FILTER = AtseParams(min_reads=1, min_cells=1, min_intron=1, min_site_usage=0.0)

# Hand-made junctions with the event each must land in (None: removed).
HAND = [
    # alternative acceptor: share the start site 100
    (("chr1", 100, 200, "+", 50), "alt_acc"),
    (("chr1", 100, 300, "+", 40), "alt_acc"),
    # overlaps alt_acc's span but shares no site with it: its own event
    (("chr1", 150, 250, "+", 30), "nested"),
    (("chr1", 150, 260, "+", 30), "nested"),
    # same coordinates on the other strand: a different event
    (("chr1", 100, 200, "-", 20), "minus"),
    (("chr1", 100, 300, "-", 20), "minus"),
    # exon skipping chain A–B–C: A-B and B'-C share nothing, A-C links them
    (("chr1", 1000, 1100, "+", 30), "chain"),
    (("chr1", 1201, 1300, "+", 30), "chain"),
    (("chr1", 1000, 1300, "+", 10), "chain"),
    # alternative donor on another chromosome with the same numbers as alt_acc's end
    (("chr2", 100, 300, "+", 10), "alt_don"),
    (("chr2", 120, 300, "+", 10), "alt_don"),
    # a lone constitutive intron: removed (event of one junction)
    (("chr1", 5000, 6000, "+", 99), None),
]


def _partition(labels):
    groups = defaultdict(set)
    for i, lab in enumerate(labels):
        groups[lab].add(i)
    return {frozenset(g) for g in groups.values()}


def test_hand_made_events_exact():
    var = junction_table([r for r, _ in HAND])
    events, report = group_atse(var, NO_FILTER)
    got = dict(zip(events["junction_id"], events["event_id"], strict=True))
    expected = [ev for _, ev in HAND]
    kept = [i for i, ev in enumerate(expected) if ev is not None]
    assert set(got) == {var.index[i] for i in kept}
    assert _partition([got[var.index[i]] for i in kept]) == _partition([expected[i] for i in kept])
    assert report["removed"]["event_size"] == 1
    assert report["n_events"] == 5
    chain = events[events["junction_id"] == "chr1:1000-1300:+"]
    assert chain["event_id"].iloc[0] == "ATSE_chr1:1000-1300:+" and chain["n_junctions"].iloc[0] == 3


def test_site_components_chain_and_disjoint():
    chrom = np.array(["c"] * 5)
    strand = np.array(["+"] * 5)
    start = np.array([1, 5, 1, 20, 20])
    end = np.array([10, 15, 15, 30, 40])
    lab = site_components(chrom, strand, start, end)
    # 1-10 and 1-15 share start 1; 5-15 shares end 15 with 1-15: one chain; 20-30/20-40 separate.
    assert lab[0] == lab[1] == lab[2] and lab[3] == lab[4] and lab[0] != lab[3]


def test_filters_each_counted():
    rows = [
        ("chr1", 100, 200, "+", 2, 2, 1),  # min_reads
        ("chr1", 100, 300, "+", 50, 1, 1),  # min_cells
        ("chr1", 100, 120, "+", 50, 9, 1),  # intron_length (21 bp)
        ("chr1", 100, 400, "+", 50, 9, 0),  # motif: non-canonical
        ("chr1", 100, 500, ".", 50, 9, -1),  # motif: unknown strand
        ("chr1", 100, 600, "-", 50, 9, 1),  # motif: GT/AG implies + but strand is -
        ("chr1", 100, 700, "+", 500, 9, 1),  # kept
        ("chr1", 100, 800, "+", 2000, 9, -1),  # kept (unknown motif, known strand)
        ("chr1", 100, 900, "+", 40, 9, 1),  # site_usage: 40 / 2540 < 0.05
    ]
    var = junction_table(rows)
    events, report = group_atse(var, AtseParams(min_reads=5, min_cells=3, min_intron=50))
    assert report["removed"] == {
        "min_reads": 1,
        "min_cells": 1,
        "intron_length": 1,
        "motif": 3,
        "site_usage": 1,
        "event_size": 0,
    }
    assert sorted(events["junction_id"]) == ["chr1:100-700:+", "chr1:100-800:+"]
    # With --motif any the three motif cases come back (the '.' and '-' ones form their own strands).
    _, report_any = group_atse(var, AtseParams(min_reads=5, min_cells=3, min_intron=50, motif="any"))
    assert report_any["removed"]["motif"] == 0


def test_site_usage_then_recomputed_components():
    # A weak junction (1 read of 101 at site 100) bridges two events; removing it splits them.
    rows = [
        ("chr1", 100, 200, "+", 100),
        ("chr1", 100, 2000, "+", 1),
        ("chr1", 1500, 2000, "+", 100),
        ("chr1", 1600, 2000, "+", 100),
        ("chr1", 100, 300, "+", 100),
    ]
    events, _ = group_atse(junction_table(rows), AtseParams(min_reads=1, min_cells=1, min_site_usage=0.05))
    assert events["event_id"].nunique() == 2
    assert "chr1:100-2000:+" not in set(events["junction_id"])


def test_max_junctions():
    rows = [("chr1", 100, 200 + 10 * i, "+", 10) for i in range(6)]
    events, report = group_atse(
        junction_table(rows), AtseParams(min_reads=1, min_cells=1, max_junctions=5, min_site_usage=0)
    )
    assert events.empty and report["removed"]["event_size"] == 6


@pytest.mark.parametrize(
    "bad",
    [dict(motif="x"), dict(min_junctions=1), dict(min_site_usage=1.5), dict(min_intron=10, max_intron=5)],
)
def test_params_validated(bad):
    with pytest.raises(ValueError):
        AtseParams(**bad)


def _connected_by_sites(ev) -> bool:
    """Independent check (BFS) that the junctions of one event form one splice-site chain."""
    rows = list(ev[["start", "end"]].itertuples(index=False))
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        for j, r in enumerate(rows):
            if j not in seen and (r.start == rows[i].start or r.end == rows[i].end):
                seen.add(j)
                todo.append(j)
    return len(seen) == len(rows)


@needs_shared
@pytest.mark.parametrize("sub", ["sj_out_tab", "junc"])
def test_real_data_events(sub):
    a = read_junctions(SCASL / sub, progress=False)
    events, report = group_atse(a.var)
    assert report["n_events"] > 100
    sizes = events.groupby("event_id").size()
    assert sizes.min() >= 2
    for _, ev in list(events.groupby("event_id"))[:400]:
        assert ev["chrom"].nunique() == 1 and ev["strand"].nunique() == 1
        assert _connected_by_sites(ev)
    # No splice site belongs to two events.
    for col in ("start", "end"):
        per_site = events.groupby(["chrom", "strand", col])["event_id"].nunique()
        assert per_site.max() == 1
    assert (events["total_reads"] >= 5).all() and (events["n_cells"] >= 3).all()


GTF_LINES = [
    "#!genome-build test",
    '{c}\tt\tgene\t50\t3000\t.\t+\t.\tgene_id "G1"; gene_name "Alpha";',
    '{c}\tt\texon\t50\t99\t.\t+\t.\tgene_id "G1"; transcript_id "T1"; gene_name "Alpha";',
    '{c}\tt\texon\t201\t400\t.\t+\t.\tgene_id "G1"; transcript_id "T1"; gene_name "Alpha";',
    '{c}\tt\texon\t50\t99\t.\t+\t.\tgene_id "G1"; transcript_id "T2"; gene_name "Alpha";',
    '{c}\tt\texon\t301\t400\t.\t+\t.\tgene_id "G1"; transcript_id "T2"; gene_name "Alpha";',
    '{c}\tt\tgene\t5000\t9000\t.\t-\t.\tgene_id "G2"; gene_name "Beta";',
    '{c}\tt\texon\t5000\t5100\t.\t-\t.\tgene_id "G2"; transcript_id "T3"; gene_name "Beta";',
    '{c}\tt\texon\t5900\t9000\t.\t-\t.\tgene_id "G2"; transcript_id "T3"; gene_name "Beta";',
]


def test_gtf_gene_assignment_and_strand(tmp_path):
    gtf = write_text(tmp_path / "a.gtf.gz", [line.format(c="chr1") for line in GTF_LINES], gz=True)
    ann = read_gtf(gtf)
    assert len(ann.introns) == 3
    var = junction_table(
        [
            ("chr1", 100, 200, "+", 9),
            ("chr1", 100, 300, "+", 9),
            ("chr1", 100, 250, "+", 9),
            ("chr1", 5101, 5899, ".", 9),
            ("chr1", 20000, 21000, "+", 9),
        ]
    )
    out = assign_genes(var, ann)
    assert list(out["gene_id"][:4]) == ["G1", "G1", "G1", "G2"]
    assert out["gene_id"].iloc[4] is None
    assert list(out["annotated_gtf"]) == [1, 1, 0, 1, 0]
    assert out["strand"].iloc[3] == "-"  # unknown strand taken from the matching annotated intron
    assert list(out["gene_name"][:2]) == ["Alpha", "Alpha"]
    events, _ = group_atse(var.iloc[:3], NO_FILTER)
    ev = annotate_events(events, assign_genes(events, ann))
    assert set(ev["gene_name"]) == {"Alpha"}


def test_gtf_chr_prefix_mismatch_is_explained(tmp_path):
    gtf = write_text(tmp_path / "ensembl.gtf", [line.format(c="1") for line in GTF_LINES])
    ann = read_gtf(gtf)
    var = junction_table([("chr1", 100, 200, "+", 9)])
    with pytest.raises(InputError) as err:
        check_chromosomes(var["chrom"], ann)
    msg = str(err.value)
    assert "ensembl.gtf" in msg and "line 2" in msg and "'chr' prefix" in msg and "Fix:" in msg
    assert (
        check_chromosomes(
            var["chrom"],
            read_gtf(write_text(tmp_path / "g.gtf", [line.format(c="chr1") for line in GTF_LINES])),
        )
        == 1.0
    )


def test_gtf_strand_lets_unknown_strand_junctions_through(tmp_path):
    from splicevi.data.gtf import infer_strand

    ann = read_gtf(write_text(tmp_path / "a.gtf", [line.format(c="chr1") for line in GTF_LINES]))
    var = junction_table([("chr1", 100, 200, ".", 9), ("chr1", 100, 300, ".", 9), ("chr7", 100, 300, ".", 9)])
    events, _ = group_atse(var, AtseParams(min_reads=1, min_cells=1))
    assert events.empty  # unknown strand fails the canonical motif/strand filter
    filled, n = infer_strand(var, ann)
    assert n == 2 and list(filled["strand"]) == ["+", "+", "."]
    assert (filled.index == var.index).all()
    events, _ = group_atse(filled, AtseParams(min_reads=1, min_cells=1))
    assert sorted(events["junction_id"]) == ["chr1:100-200:.", "chr1:100-300:."]
    assert set(events["strand"]) == {"+"}
