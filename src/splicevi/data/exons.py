"""Exons of a GTF in a few genomic regions (the exon track of arc plots).

Streams the GTF once and keeps only exon lines that overlap a requested region, so a whole-genome
annotation costs one pass and little memory. Chromosome names match with or without a ``chr``
prefix (the junctions and the GTF may spell them differently; :mod:`splicevi.data.gtf` warns
about that when genes are assigned).
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterable

import pandas as pd

from splicevi._io import require_file

_ATTR = {key: re.compile(rf'{key} "([^"]+)"') for key in ("gene_name", "gene_id", "transcript_id")}


def _bare(chrom: str) -> str:
    return chrom[3:] if chrom.lower().startswith("chr") else chrom


def read_exons(path: str | os.PathLike, regions: Iterable[tuple[str, int, int]]) -> pd.DataFrame:
    """Exon lines of a GTF that overlap any of ``regions``.

    Parameters
    ----------
    path
        GTF, plain or ``.gz``.
    regions
        ``(chrom, start, end)``, 1-based inclusive, chromosome spelt as in the junction data.

    Returns
    -------
    DataFrame
        Columns ``chrom`` (as in ``regions``), ``start``, ``end``, ``strand``, ``gene_name``,
        ``transcript_id``; one row per exon line, duplicates dropped.
    """
    wanted: dict[str, list[tuple[int, int, str]]] = {}
    for chrom, start, end in regions:
        wanted.setdefault(_bare(str(chrom)), []).append((int(start), int(end), str(chrom)))
    path = require_file(path, "GTF annotation")
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    with opener(path, "rt") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 9 or fields[2] != "exon":
                continue
            spans = wanted.get(_bare(fields[0]))
            if not spans:
                continue
            try:
                start, end = int(fields[3]), int(fields[4])
            except ValueError:
                continue  # a malformed line; `splicevi atse` names those when it reads the GTF
            for lo, hi, name in spans:
                if start <= hi and end >= lo:
                    attrs = {
                        k: (m.group(1) if (m := rx.search(fields[8])) else "") for k, rx in _ATTR.items()
                    }
                    rows.append(
                        (
                            name,
                            start,
                            end,
                            fields[6],
                            attrs["gene_name"] or attrs["gene_id"],
                            attrs["transcript_id"],
                        )
                    )
                    break
    columns = ["chrom", "start", "end", "strand", "gene_name", "transcript_id"]
    return pd.DataFrame(rows, columns=columns).drop_duplicates().reset_index(drop=True)
