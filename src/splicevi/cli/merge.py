"""``splicevi merge``: per-sample ``splicevi ingest`` outputs → one cohort ``junctions.h5ad`` (+ ``genes.h5ad``).

``--junctions`` (and ``--genes``) list one file per row of ``--sample-sheet``, in the sheet's order.
Cell ids become ``<sample>_<barcode>`` for every sample (``_`` is not allowed in sample ids, so the
prefix is unambiguous); junctions with identical coordinates are one column, absent ones are zeros;
the sheet's free columns (donor, condition, ...) become cell annotations and ``batch`` is the sheet's
``batch`` column or else the sample id. Per-sample provenance is in ``uns["splicevi_merge"]``.
"""

from __future__ import annotations

import argparse
import logging

from ._errors import UsageError
from ._summary import print_summary

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi merge`` and its arguments."""
    p = subparsers.add_parser(
        "merge", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sample-sheet", required=True, help="cohort sample sheet (sample, junctions, ...; TSV)")
    p.add_argument("--junctions", nargs="+", required=True, help="per-sample junctions.h5ad, in sheet order")
    p.add_argument("--genes", nargs="+", help="per-sample genes.h5ad, in sheet order")
    p.add_argument("--out-junctions", required=True, help="merged cells × junctions .h5ad")
    p.add_argument("--out-genes", help="merged cells × genes .h5ad (with --genes)")
    p.add_argument(
        "--out-annotations",
        help="TSV of the cells' sample, batch and sheet columns (for `cluster --annotations`)",
    )
    p.add_argument(
        "--cell-annotations",
        help="per-cell annotation table (TSV/CSV; ids <sample>_<barcode> in the first "
        "column, or columns sample and barcode) whose columns are added to "
        "--out-annotations",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi merge``; returns the exit status (0: every output written)."""
    from splicevi._io import atomic_path, require_file
    from splicevi.data.assemble import clean_uns
    from splicevi.data.cell_annotations import join_cell_table, read_cell_table
    from splicevi.data.merge import merge_genes, merge_junctions
    from splicevi.data.samples import read_cohort_sheet

    if bool(args.genes) != bool(args.out_genes):
        raise UsageError("--genes and --out-genes go together")
    sheet = read_cohort_sheet(require_file(args.sample_sheet, "sample sheet"), check_paths=False)
    samples = list(sheet.index)
    for name, files in (("--junctions", args.junctions), ("--genes", args.genes or samples)):
        if len(files) != len(samples):
            raise UsageError(
                f"{name}: {len(files)} file(s) for {len(samples)} sample(s) of {args.sample_sheet}; "
                "give one per sheet row, in the sheet's order"
            )
    from splicevi.data.io import read_anndata

    parts = [
        (s, read_anndata(f, f"junctions .h5ad of sample '{s}'", made_by="`splicevi ingest`"))
        for s, f in zip(samples, args.junctions, strict=True)
    ]
    merged, prov = merge_junctions(parts, sheet)
    rows = [
        (
            f"sample {s}",
            f"{p['n_cells']:,} cells, {p['n_junctions']:,} junctions, {p['n_junction_reads']:,} reads",
        )
        for s, p in prov["samples"].items()
    ]
    if prov.get("chrom_renamed"):
        names = ", ".join(f"{a}→{b}" for a, b in prov["chrom_renamed"].items())
        where = ", ".join(f"{s} ({n:,} junctions)" for s, n in prov["chrom_renamed_samples"].items())
        rows.append(("NOTE chromosome names harmonized across samples", f"{names} in {where}"))
    del parts
    genes = None
    if args.genes:
        gparts = [
            (s, read_anndata(f, f"genes .h5ad of sample '{s}'", made_by="`splicevi ingest`"))
            for s, f in zip(samples, args.genes, strict=True)
        ]
        genes = merge_genes(gparts, merged.obs)
        del gparts
    merged.uns["splicevi_merge"] = clean_uns({"sample_sheet": args.sample_sheet, **prov})
    merged.uns["splicevi_ingest"] = clean_uns(
        {"format": "merged", "input": args.sample_sheet, "samples": samples}
    )
    with atomic_path(args.out_junctions) as tmp_j:
        merged.write_h5ad(tmp_j)
        if genes is not None:
            with atomic_path(args.out_genes) as tmp_g:
                genes.write_h5ad(tmp_g)
    if args.cell_annotations and not args.out_annotations:
        raise UsageError("--cell-annotations needs --out-annotations (the table its columns are added to)")
    if args.out_annotations:
        cols = [c for c in merged.obs.columns if c != "barcode"]
        annotations = merged.obs[cols]
        if args.cell_annotations:
            # a bad table is a data error (CellTableError is a ValueError: exit 3, naming the file)
            table = read_cell_table(require_file(args.cell_annotations, "cell annotation table"))
            annotations, joined = join_cell_table(annotations, table, args.cell_annotations)
            rows.append(
                (
                    "cell annotations",
                    f"{joined['matched']:,} of {joined['cells']:,} cells in "
                    f"{args.cell_annotations} ({joined['table_rows']:,} rows), columns {', '.join(table.columns)}",
                )
            )
            if joined["matched"] < joined["cells"]:
                log.warning(
                    "%s: %d of %d cells have no row there (in no group of a contrast on its columns)",
                    args.cell_annotations,
                    joined["cells"] - joined["matched"],
                    joined["cells"],
                )
        with atomic_path(args.out_annotations) as tmp_a:
            annotations.rename_axis("cell_id").to_csv(tmp_a, sep="\t")
    rows += [
        ("cells", merged.n_obs),
        ("junctions (union)", merged.n_vars),
        ("genes", genes.n_vars if genes is not None else "none"),
        ("wrote", args.out_junctions + (f", {args.out_genes}" if genes is not None else "")),
    ]
    print_summary("splicevi merge", rows)
    return 0
