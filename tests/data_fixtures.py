"""Helpers and fixtures of the data-pipeline tests (readers, ATSE, assembly, CLI)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

#: Real public junction data beside the repository (../shared/data); tests skip only if it is absent.
SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SCASL = SHARED_DATA / "scasl_tnbc_smartseq2"
SPLIKIT = SHARED_DATA / "splikit_10x_mouse"

needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


def write_text(path: Path, lines: list[str], gz: bool = False) -> Path:
    """Write lines (joined with newlines, trailing newline) to a plain or gzip file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def sj_line(chrom, start, end, strand=1, motif=1, annotated=1, unique=5, multi=0, overhang=30) -> str:
    """One STAR SJ.out.tab line (1-based intron)."""
    return "\t".join(map(str, (chrom, start, end, strand, motif, annotated, unique, multi, overhang)))


def junc_line(chrom, start, end, count=5, strand="+") -> str:
    """One LeafCutter .junc line from a 1-based intron (start written 0-based)."""
    return "\t".join(map(str, (chrom, start - 1, end, ".", count, strand)))


def regtools_line(chrom, start, end, count=5, strand="+", left=20, right=30) -> str:
    """One regtools BED12 line from a 1-based intron with anchors of ``left``/``right`` bases."""
    bed_start = start - 1 - left
    bed_end = end + right
    return "\t".join(
        map(
            str,
            (
                chrom,
                bed_start,
                bed_end,
                "JUNC1",
                count,
                strand,
                bed_start,
                bed_end,
                "255,0,0",
                2,
                f"{left},{right}",
                f"0,{end - bed_start}",
            ),
        )
    )


def junction_table(rows: list[tuple]) -> pd.DataFrame:
    """A junction ``var`` from (chrom, start, end, strand, reads[, n_cells[, motif]]) tuples."""
    # n_cells 10 and a canonical motif matching the strand (GT/AG on +, CT/AC on -) unless given.
    full = [tuple(r) + (10, 1 if r[3] == "+" else 2 if r[3] == "-" else -1)[len(r) - 5 :] for r in rows]
    df = pd.DataFrame(full, columns=["chrom", "start", "end", "strand", "total_reads", "n_cells", "motif"])
    df.index = (
        df["chrom"] + ":" + df["start"].astype(str) + "-" + df["end"].astype(str) + ":" + df["strand"]
    ).values
    return df


def tiny_simulation():
    """A tiny simulation (fast): 80 cells, 40 genes, 25 events."""
    from splicevi.data import simulate

    return simulate(n_cells=80, n_genes=40, n_events=25, n_types=3, observed_fraction=0.4, seed=11)


def random_state(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)
