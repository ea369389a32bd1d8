"""Command line: simulate → ingest → atse → assemble recovers the planted events from input files."""

from __future__ import annotations

import json

import mudata as md
import pandas as pd
import pytest

from splicevi.cli.main import main


@pytest.mark.parametrize("command", ["simulate", "ingest", "atse", "assemble"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--out" in capsys.readouterr().out


def _run(argv, capsys):
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return captured.out


@pytest.mark.parametrize("fmt", ["starsolo", "sj_out_tab"])
def test_pipeline_recovers_planted_events(fmt, tmp_path, capsys):
    sim = tmp_path / "sim"
    out = _run(
        [
            "simulate",
            "--out",
            str(sim),
            "--format",
            fmt,
            "--n-cells",
            "60",
            "--n-genes",
            "30",
            "--n-events",
            "20",
            "--n-types",
            "3",
            "--observed-fraction",
            "0.5",
            "--seed",
            "5",
            "--no-progress",
        ],
        capsys,
    )
    assert "junctions" in out
    if fmt == "starsolo":
        ingest = ["--junctions", str(sim), "--genes", str(sim / "Solo.out" / "Gene" / "filtered")]
    else:
        ingest = [
            "--junctions",
            str(sim / "samples.tsv"),
            "--junction-format",
            "sj_out_tab",
            "--genes",
            str(sim / "genes_samples.tsv"),
            "--gene-format",
            "star_counts",
        ]
    out = _run(
        [
            "ingest",
            *ingest,
            "--out-junctions",
            str(tmp_path / "j.h5ad"),
            "--out-genes",
            str(tmp_path / "g.h5ad"),
            "--no-progress",
        ],
        capsys,
    )
    assert "cells in both modalities" in out and "fraction of cell × junction observed" in out
    out = _run(
        [
            "atse",
            "--junctions",
            str(tmp_path / "j.h5ad"),
            "--min-reads",
            "1",
            "--min-cells",
            "1",
            "--min-site-usage",
            "0",
            "--out",
            str(tmp_path / "events.tsv"),
        ],
        capsys,
    )
    assert "removed: event_size" in out
    summary = json.loads((tmp_path / "events.summary.json").read_text())
    assert summary["params"]["min_reads"] == 1
    out = _run(
        [
            "assemble",
            "--junctions",
            str(tmp_path / "j.h5ad"),
            "--events",
            str(tmp_path / "events.tsv"),
            "--genes",
            str(tmp_path / "g.h5ad"),
            "--out",
            str(tmp_path / "data.h5mu"),
        ],
        capsys,
    )
    assert "events (ATSEs)" in out

    truth = pd.read_csv(sim / "truth_junctions.tsv", sep="\t")
    events = pd.read_csv(tmp_path / "events.tsv", sep="\t")
    m = truth.merge(events, on="junction_id", how="inner", suffixes=("_true", ""))
    # Every planted junction with reads is grouped, and the grouping is the planted one (a bijection).
    assert len(m) >= 0.95 * len(truth)
    assert m.groupby("event_id_true")["event_id"].nunique().max() == 1
    assert m.groupby("event_id")["event_id_true"].nunique().max() == 1
    # No junction outside the planted events survives (constitutive extras are singletons).
    assert set(events["junction_id"]) <= set(truth["junction_id"])

    mdata = md.read_h5mu(tmp_path / "data.h5mu")
    cells = pd.read_csv(sim / "truth_cells.tsv", sep="\t", index_col=0)
    assert set(mdata.obs_names) <= set(cells.index)
    assert set(mdata.mod) == {"rna", "splicing"}
    s = mdata["splicing"]
    k = s.layers["cell_by_junction_matrix"]
    assert list(s.layers) == ["cell_by_junction_matrix"]  # lean layout: the rest is derived
    from splicevi.data.layers import layer_or_derived

    assert (k > layer_or_derived(s, "cell_by_cluster_matrix")).nnz == 0
    assert mdata.uns["splicevi_provenance"]["atse"]["params"]["min_reads"] == 1


def test_embedded_example_is_the_simulators_output(tmp_path, capsys):
    """resources/example is exactly what its README's `splicevi simulate` command writes."""
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "resources" / "example"
    if not (example / "sim_SJ.out.tab").exists():
        pytest.skip("embedded example not present")
    _run(
        [
            "simulate",
            "--out",
            str(tmp_path / "ex"),
            "--format",
            "starsolo",
            "--n-cells",
            "400",
            "--n-genes",
            "150",
            "--n-events",
            "300",
            "--observed-fraction",
            "0.25",
            "--seed",
            "0",
            "--gzip",
            "--no-progress",
        ],
        capsys,
    )
    made = sorted(p.relative_to(tmp_path / "ex") for p in (tmp_path / "ex").rglob("*") if p.is_file())
    assert made == sorted(
        p.relative_to(example) for p in example.rglob("*") if p.is_file() and p.name != "README.md"
    )
    for rel in made:
        assert (tmp_path / "ex" / rel).read_bytes() == (example / rel).read_bytes(), rel
    assert sum((example / rel).stat().st_size for rel in made) < 2_000_000
