"""``splicevi ingest``: junction tables (+ gene counts) → ``junctions.h5ad`` (+ ``genes.h5ad``).

``--junctions`` is a STARsolo run / ``Solo.out`` folder, a long table, a folder of per-cell files,
a single per-cell file, or a cell sheet (``cell_id``, ``path``, optional ``batch``) of per-cell
files; ``--cell-sheet`` may name the sheet instead (then ``--junctions`` is ignored for reading).
``--genes`` for ``star_counts`` is a cell sheet of ``ReadsPerGene.out.tab`` files. (A *sample* sheet
is a cohort's table, one row per sample, read by ``splicevi merge`` and the workflow.)
"""

from __future__ import annotations

import argparse
import logging

import numpy as np

from ._errors import UsageError
from ._summary import print_summary

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi ingest`` and its arguments."""
    from splicevi.data import format_choices

    p = subparsers.add_parser(
        "ingest", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--junctions", required=True, help="junction input (folder, table, per-cell file or cell sheet)"
    )
    p.add_argument(
        "--junction-format", default="auto", choices=format_choices("junctions"), help="format of --junctions"
    )
    # --sample-sheet: this option's name before "sample sheet" came to mean a cohort's table only.
    p.add_argument(
        "--cell-sheet",
        "--sample-sheet",
        dest="cell_sheet",
        help="TSV/CSV: cell_id, path[, batch] of per-cell junction files (the cell sheet)",
    )
    p.add_argument(
        "--genes",
        help="gene counts (STARsolo Gene folder, 10x .h5, mtx folder, .h5ad, or a cell "
        "sheet of ReadsPerGene.out.tab files)",
    )
    p.add_argument("--gene-format", default="auto", choices=format_choices("genes"), help="format of --genes")
    p.add_argument(
        "--gene-strandedness",
        default="unstranded",
        choices=("unstranded", "forward", "reverse"),
        help="column of ReadsPerGene.out.tab to use (star_counts)",
    )
    p.add_argument("--barcodes", help="keep only these barcodes (e.g. STARsolo Gene/filtered/barcodes.tsv)")
    p.add_argument("--batch", help="batch label of all cells (a 'batch' column of the cell sheet wins)")
    p.add_argument(
        "--sj-multimappers",
        action="store_true",
        help="count multi-mapping reads of SJ.out.tab (column 8) as well as unique ones",
    )
    p.add_argument("--out-junctions", required=True, help="output cells × junctions .h5ad")
    p.add_argument("--out-genes", help="output cells × genes .h5ad (required with --genes)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def _input_notes(info: dict) -> list[tuple[str, object]]:
    """Summary rows for what the reader changed in the input (renamed chromosomes, summed duplicates)."""
    rows: list[tuple[str, object]] = []
    if info.get("chrom_renamed"):
        names = ", ".join(f"{a}→{b}" for a, b in info["chrom_renamed"].items())
        rows.append(
            ("NOTE chromosome names harmonized", f"{names} ({info['chrom_renamed_records']:,} records)")
        )
    if info.get("duplicate_records"):
        rows.append(
            (
                "NOTE duplicate junction lines summed",
                f"{info['duplicate_records']:,} in {info['cells_with_duplicates']:,} cell(s), "
                f"e.g. {info['duplicate_example_cell']}",
            )
        )
    return rows


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi ingest``; returns the exit status (0: every output written)."""
    from splicevi._io import atomic_path
    from splicevi.data._tables import count_totals
    from splicevi.data.barcodes import apply_allowlist, match_cells
    from splicevi.data.readers_genes import read_genes
    from splicevi.data.readers_junctions import introns_on_both_strands, read_junctions

    if args.genes and not args.out_genes:
        raise UsageError("--genes needs --out-genes (where to write the gene counts)")
    if args.out_genes and not args.genes:
        raise UsageError("--out-genes needs --genes (the gene counts to read)")
    progress = not args.no_progress
    jun = read_junctions(
        args.junctions,
        args.junction_format,
        cell_sheet=args.cell_sheet,
        batch=args.batch,
        progress=progress,
        multimappers=args.sj_multimappers,
    )
    rows: list[tuple[str, object]] = [
        ("junction input", f"{args.junctions} ({jun.uns['splicevi_ingest']['format']})"),
        ("barcodes read", jun.n_obs),
    ]
    rows += _input_notes(jun.uns["splicevi_ingest"])
    n_both, example = introns_on_both_strands(jun.var)
    if n_both:
        log.warning(
            "%d intron(s) appear on both strands (e.g. %s): kept as separate junctions", n_both, example
        )
        rows.append(
            (
                "NOTE same intron on both strands",
                f"{n_both:,} intron(s), e.g. {example}: kept as separate "
                "junctions (the strand filter of `splicevi atse` decides)",
            )
        )
        jun.uns["splicevi_ingest"] = {**jun.uns["splicevi_ingest"], "introns_on_both_strands": n_both}
    if args.barcodes:
        jun, n_absent = apply_allowlist(jun, args.barcodes)
        rows.append(("kept by --barcodes", f"{jun.n_obs:,} ({n_absent:,} listed barcodes absent)"))
    empty = np.asarray(jun.X.sum(axis=1)).ravel() == 0
    if empty.any():
        jun = jun[~empty].copy()
        rows.append(("dropped: no junction reads", int(empty.sum())))
    if jun.n_obs == 0:
        raise ValueError(f"{args.junctions}: no cell has any junction read; check the input (and --barcodes)")
    genes = None
    if args.genes:
        genes = read_genes(
            args.genes, args.gene_format, strandedness=args.gene_strandedness, progress=progress
        )
        rows.append(
            (
                "gene input",
                f"{args.genes} ({genes.uns['splicevi_ingest']['gene_format']}), "
                f"{genes.n_obs:,} cells × {genes.n_vars:,} genes",
            )
        )
        if args.barcodes:
            genes, _ = apply_allowlist(genes, args.barcodes)
        jun, genes, match = match_cells(jun, genes, genes_source=args.genes, junctions_source=args.junctions)
        rows += [
            ("cells in both modalities", match.n_common),
            ("dropped: junctions only", match.n_junction_only),
            ("dropped: genes only", match.n_gene_only),
        ]
        if match.normalised:
            rows.append(("barcode matching", "after removing '-N' suffixes"))
        genes.uns["splicevi_ingest"] = {**genes.uns.get("splicevi_ingest", {}), "barcodes": match.as_dict()}
    jun.var["total_reads"] = count_totals(jun.X, axis=0)  # exact: X is float32
    jun.var["n_cells"] = np.bincount(jun.X.indices, minlength=jun.n_vars).astype(np.int64)
    from splicevi.data.assemble import clean_uns

    jun.uns["splicevi_ingest"] = clean_uns(
        {**jun.uns["splicevi_ingest"], "barcodes_file": args.barcodes, "batch": args.batch}
    )
    with atomic_path(args.out_junctions) as tmp_j:
        jun.write_h5ad(tmp_j)
        if genes is not None:
            genes.uns["splicevi_ingest"] = clean_uns(genes.uns["splicevi_ingest"])
            with atomic_path(args.out_genes) as tmp_g:
                genes.write_h5ad(tmp_g)
    nnz = jun.X.nnz
    rows += [
        ("cells", jun.n_obs),
        ("junctions", jun.n_vars),
        ("junctions with reads", int((jun.var["total_reads"] > 0).sum())),
        ("junction reads", int(jun.var["total_reads"].sum())),
        ("fraction of cell × junction observed", nnz / max(jun.n_obs * jun.n_vars, 1)),
        ("median junctions per cell", float(np.median(np.diff(jun.X.indptr)))),
        ("wrote", args.out_junctions + (f", {args.out_genes}" if genes is not None else "")),
    ]
    print_summary("splicevi ingest", rows)
    return 0
