"""``splicevi summary``: the report's first page (what the run found), from the run's tables and figures.

Writes reStructuredText that Snakemake's report shows as its front page: inputs and samples, cells
and ATSEs kept, clusters, calls per contrast (with the test used), the top events with their arc plot
and PSI on the UMAP inline, the QC tables and warnings for degenerate data. Every user-provided
string is escaped (see splicevi.pl.summary).
"""

from __future__ import annotations

import argparse
import json

from ._errors import UsageError
from ._summary import print_summary


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi summary``."""
    p = subparsers.add_parser(
        "summary", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--run-info",
        required=True,
        help="JSON of the run's settings (input, samples, gtf, ds, de, "
        "resolution), as the workflow writes it",
    )
    p.add_argument("--qc-samples", required=True, help="splicevi qc per-sample table (TSV)")
    p.add_argument("--qc-overall", required=True, help="splicevi qc overall table (TSV)")
    p.add_argument("--cells", required=True, help="splicevi cluster cell table (TSV)")
    p.add_argument("--ds-junctions", required=True, help="splicevi ds table per junction (TSV)")
    p.add_argument("--ds-events", required=True, help="splicevi ds table per ATSE (TSV)")
    p.add_argument("--de", default=None, help="splicevi de table (TSV); none without gene counts")
    p.add_argument("--sample-sheet", default=None, help="the cohort's sample sheet, shown as a table")
    p.add_argument("--arcs", default=None, help="arc plot figure of the top events")
    p.add_argument("--psi-umap", default=None, help="PSI-on-UMAP figure of the top junctions")
    p.add_argument("--logs", default=None, help="the run's log folder (its WARNING lines are listed)")
    p.add_argument("--out", required=True, help="output reStructuredText (.rst)")
    p.set_defaults(func=run)
    return p


def _tsv(path, **kwargs):
    import pandas as pd

    from splicevi._io import require_file

    return pd.read_csv(require_file(path, "table"), sep="\t", **kwargs)


def run(args: argparse.Namespace) -> int:
    """Write the summary page."""
    from splicevi._io import atomic_path
    from splicevi.pl.summary import render_summary

    try:
        info = json.loads(args.run_info)
    except json.JSONDecodeError as err:
        raise UsageError(f"--run-info is not valid JSON: {err}") from None
    labels = {"contrast": str, "groupby": str, "group1": str, "group2": str, "gene_name": str, "test": str}
    sheet = None
    if args.sample_sheet:
        from splicevi.data.samples import read_cohort_sheet

        sheet = read_cohort_sheet(args.sample_sheet, check_paths=False)
    figures = [
        (
            "Top events: arc plots",
            args.arcs,
            "Junction reads pooled over each side of the contrast (arc width) with their PSI, for the top ATSEs.",
        ),
        (
            "Top junctions: observed PSI on the UMAP",
            args.psi_umap,
            "Each cell's observed PSI of the top junction of each contrast; grey: the ATSE has no read in the cell.",
        ),
    ]
    text = render_summary(
        info,
        qc_samples=_tsv(args.qc_samples, index_col=0),
        qc_overall=_tsv(args.qc_overall, index_col=0),
        cells=_tsv(args.cells, index_col=0, dtype=str),
        ds_junctions=_tsv(args.ds_junctions, dtype=labels),
        ds_events=_tsv(args.ds_events, dtype=labels),
        de=_tsv(args.de, dtype=labels) if args.de else None,
        samples=sheet,
        figures=[f for f in figures if f[1]],
        log_dir=args.logs,
    )
    with atomic_path(args.out) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    print_summary("splicevi summary", [("wrote", args.out)])
    return 0
