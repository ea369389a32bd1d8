"""GTF annotation: genes, annotated introns, and gene assignment of junctions (vectorised)."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from splicevi._io import require_file

from ._tables import InputError


@dataclass
class Annotation:
    """Exons, introns and gene spans of a GTF."""

    path: str
    genes: pd.DataFrame  # gene_id index; chrom, start, end, strand, gene_name
    introns: pd.DataFrame  # chrom, start, end (1-based intron), strand, gene_id
    first_data_line: int


def _count_header_lines(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "rt") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            n += 1
    return n


def read_gtf(path: str | os.PathLike) -> Annotation:
    """Read exons and genes of a GTF (plain or ``.gz``).

    Genes are taken from ``gene`` lines when present, else spanned from their exons. Introns are the
    gaps between consecutive exons of each transcript.
    """
    path = require_file(path, "GTF annotation")
    fix = 'pass a GTF (9 tab-separated columns, attributes with gene_id "..."), e.g. from GENCODE or Ensembl'
    try:
        header = _count_header_lines(Path(path))
        df = pd.read_csv(
            path,
            sep="\t",
            header=None,
            comment="#",
            usecols=[0, 2, 3, 4, 6, 8],
            dtype={0: str, 2: str, 3: np.int64, 4: np.int64, 6: str, 8: str},
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        raise InputError(path, "the GTF is empty", fix, line=1) from None
    except (pd.errors.ParserError, ValueError) as err:
        raise InputError(path, f"malformed GTF ({str(err).split('C error: ')[-1]})", fix) from None
    df.columns = ["chrom", "feature", "start", "end", "strand", "attributes"]
    if df.isna().any(axis=None):
        i = int(np.nonzero(df.isna().any(axis=1).to_numpy())[0][0])
        raise InputError(path, "missing field (fewer than 9 columns)", fix, line=header + i + 1)
    gene_id = df["attributes"].str.extract(r'gene_id "([^"]+)"', expand=False)
    if gene_id.isna().all():
        raise InputError(path, "no gene_id attribute found", fix, line=header + 1)
    df["gene_id"] = gene_id
    df["gene_name"] = df["attributes"].str.extract(r'gene_name "([^"]+)"', expand=False).fillna(gene_id)
    exons = df[df["feature"] == "exon"].copy()
    if exons.empty:
        raise InputError(path, "no exon lines", fix, line=header + 1)
    exons["transcript_id"] = exons["attributes"].str.extract(r'transcript_id "([^"]+)"', expand=False)
    exons = exons.dropna(subset=["transcript_id", "gene_id"])
    gene_lines = df[df["feature"] == "gene"]
    src = gene_lines if len(gene_lines) else exons
    genes = src.groupby("gene_id", sort=False).agg(
        chrom=("chrom", "first"),
        start=("start", "min"),
        end=("end", "max"),
        strand=("strand", "first"),
        gene_name=("gene_name", "first"),
    )
    exons = exons.sort_values(["transcript_id", "start"], kind="stable")
    same_tx = exons["transcript_id"].to_numpy()[1:] == exons["transcript_id"].to_numpy()[:-1]
    introns = pd.DataFrame(
        {
            "chrom": exons["chrom"].to_numpy()[1:][same_tx],
            "start": exons["end"].to_numpy()[:-1][same_tx] + 1,
            "end": exons["start"].to_numpy()[1:][same_tx] - 1,
            "strand": exons["strand"].to_numpy()[1:][same_tx],
            "gene_id": exons["gene_id"].to_numpy()[1:][same_tx],
        }
    )
    introns = introns[introns["end"] >= introns["start"]].drop_duplicates(["chrom", "start", "end", "strand"])
    return Annotation(str(path), genes, introns.reset_index(drop=True), header + 1)


def _uses_chr(names: pd.Index) -> bool:
    """Whether most names carry the ``chr`` prefix (GENCODE / UCSC style)."""
    return bool(len(names)) and float(pd.Series(names).str.startswith("chr").mean()) > 0.5


def _naming_diagnosis(junction_chroms: pd.Index, gtf_chroms: pd.Index, prefix_mismatch: bool) -> str:
    if not prefix_mismatch:
        return "the chromosome names share nothing (a GTF of another genome or assembly?)"
    if _uses_chr(junction_chroms):
        return "the junctions' names have the 'chr' prefix (GENCODE/UCSC) and the GTF's do not (Ensembl)"
    return "the GTF's names have the 'chr' prefix (GENCODE/UCSC) and the junctions' do not (Ensembl)"


def _naming_fix(junction_chroms: pd.Index, gtf_chroms: pd.Index, prefix_mismatch: bool) -> str:
    if prefix_mismatch and _uses_chr(junction_chroms):
        return (
            "use the GENCODE/UCSC GTF of the genome the reads were aligned to, or add the prefix to this one: "
            'awk \'BEGIN{OFS="\\t"} /^#/{print; next} {$1=($1=="MT" ? "chrM" : "chr"$1); print}\''
        )
    if prefix_mismatch:
        return (
            "use the Ensembl GTF of the genome the reads were aligned to, or remove the prefix from this one: "
            "sed -e 's/^chrM\\t/MT\\t/' -e 's/^chr//'"
        )
    return "use the GTF of the genome the reads were aligned to (GENCODE/UCSC: chr1, Ensembl: 1)"


def check_chromosomes(
    junction_chroms: pd.Series, ann: Annotation, junctions_source: str = "junctions"
) -> float:
    """Fraction of junction chromosomes present in the GTF; raise on a naming mismatch.

    Raises
    ------
    InputError
        No junction chromosome is in the GTF, or adding/removing a ``chr`` prefix would match more
        (the GENCODE ``chr1`` vs Ensembl ``1`` mismatch).
    """
    jc = pd.Index(pd.unique(junction_chroms.astype(str)))
    gc = pd.Index(pd.unique(ann.genes["chrom"].astype(str)))
    direct = jc.isin(gc).mean() if len(jc) else 1.0

    def flip(c: str) -> str:
        if c == "chrM":
            return "MT"
        if c == "MT":
            return "chrM"
        return c[3:] if c.startswith("chr") else "chr" + c

    flipped = jc.map(flip).isin(gc).mean() if len(jc) else 0.0
    if direct == 0 or flipped > direct + 0.25:
        raise InputError(
            ann.path,
            f"chromosome names do not match the {junctions_source}: GTF uses {list(gc[:3])}, junctions use "
            f"{list(jc[:3])}; {_naming_diagnosis(jc, gc, flipped > direct)}",
            _naming_fix(jc, gc, flipped > direct),
            line=ann.first_data_line,
        )
    return float(direct)


def assign_genes(junctions: pd.DataFrame, ann: Annotation) -> pd.DataFrame:
    """Gene, strand and annotation status of junctions from a GTF.

    Each junction gets, in order of preference: the gene of an identical annotated intron; the gene
    of an annotated intron sharing its first or last base (a known splice site); the gene whose span
    contains it. Strand-unknown junctions (``.``) are matched on coordinates alone and take the
    gene's strand.

    Parameters
    ----------
    junctions
        Columns ``chrom, start, end, strand``.

    Returns
    -------
    pandas.DataFrame
        Same index; ``gene_id``, ``gene_name``, ``strand`` (inferred where it was ``.``),
        ``annotated_gtf`` (1 if the intron is in the GTF, else 0).
    """
    j = junctions[["chrom", "start", "end", "strand"]].copy()
    j["chrom"] = j["chrom"].astype(str)
    j["_row"] = np.arange(len(j))
    intr = ann.introns.rename(columns={"strand": "ann_strand"})
    gene_id = np.full(len(j), None, dtype=object)
    strand_out = j["strand"].to_numpy(dtype=object).copy()
    annotated = np.zeros(len(j), dtype=np.int8)

    def fill(match: pd.DataFrame, mark_annotated: bool = False):
        match = match[(match["strand"] == ".") | (match["strand"] == match["ann_strand"])]
        match = match.drop_duplicates("_row")
        rows = match["_row"].to_numpy()
        free = pd.isna(gene_id[rows])
        gene_id[rows[free]] = match["gene_id"].to_numpy()[free]
        unknown = strand_out[rows] == "."
        strand_out[rows[unknown]] = match["ann_strand"].to_numpy()[unknown]
        if mark_annotated:
            annotated[rows] = 1

    fill(j.merge(intr, on=["chrom", "start", "end"]), mark_annotated=True)
    fill(j.merge(intr.drop(columns="end"), on=["chrom", "start"]))
    fill(j.merge(intr.drop(columns="start"), on=["chrom", "end"]))
    # Containing gene: the gene with the nearest start at or before the junction, if it spans it.
    todo = j[pd.isna(gene_id)].sort_values("start")
    genes = ann.genes.reset_index().rename(
        columns={"start": "g_start", "end": "g_end", "strand": "ann_strand"}
    )
    genes = genes.sort_values("g_start")
    if len(todo):
        m = pd.merge_asof(
            todo,
            genes[["chrom", "g_start", "g_end", "ann_strand", "gene_id"]],
            left_on="start",
            right_on="g_start",
            by="chrom",
            direction="backward",
        )
        m = m[m["g_end"].notna() & (m["end"] <= m["g_end"])]
        fill(m)
    names = ann.genes["gene_name"].reindex(pd.Index(gene_id.astype(str))).to_numpy()
    names = np.where(pd.isna(gene_id), None, names)
    return pd.DataFrame(
        {"gene_id": gene_id, "gene_name": names, "strand": strand_out, "annotated_gtf": annotated},
        index=junctions.index,
    )


def infer_strand(junctions: pd.DataFrame, ann: Annotation) -> tuple[pd.DataFrame, int]:
    """Give junctions of unknown strand (``.``) the strand of the annotation they match.

    Returns a copy of ``junctions`` (index unchanged) and the number of strands filled in.
    """
    unknown = (junctions["strand"].astype(str) == ".").to_numpy()
    if not unknown.any():
        return junctions, 0
    out = junctions.copy()
    out["strand"] = out["strand"].astype(str)
    inferred = assign_genes(out[unknown], ann)["strand"].to_numpy()
    out.loc[unknown, "strand"] = inferred
    return out, int((inferred != ".").sum())
