"""``splicevi atse``: filter junctions and group them into ATSEs → ``events.tsv``.

Filters (in order; each removed junction is counted under the first it fails): total reads
(--min-reads), cells with a read (--min-cells), intron length (--min-intron/--max-intron), motif and
strand consistency (--motif canonical drops known non-canonical motifs and unknown strands), usage at
either splice site (--min-site-usage), then event size after recomputing the splice-site components
(--min-junctions/--max-junctions). With --gtf, each event gets the gene_id / gene_name most of its
junctions match (identical annotated intron, shared annotated splice site, or containing gene), and
junctions of unknown strand ('.') take the strand of the annotation they match before filtering (their
junction_id keeps the '.' of the input; the strand column holds the inferred strand).

Writes ``events.tsv`` (one row per kept junction: junction_id, event_id, coordinates, gene, read
counts, site usage) and ``<events>.summary.json`` (filters and counts, used as provenance by assemble).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .._constants import EVENT_ID_COLUMN
from ._summary import print_summary

log = logging.getLogger("splicevi")
#: Default of ``--warn-min-events``: fewer ATSEs than this is too little to model or test.
WARN_MIN_EVENTS = 20


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi atse`` and its arguments."""
    from splicevi.data.atse import AtseParams

    d = AtseParams()
    p = subparsers.add_parser(
        "atse", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--junctions", required=True, help="junctions.h5ad from `splicevi ingest`")
    p.add_argument("--gtf", help="GTF (plain or .gz) for gene_id / gene_name and annotated introns")
    p.add_argument(
        "--min-reads", type=int, default=d.min_reads, help="min total reads of a junction (%(default)s)"
    )
    p.add_argument("--min-cells", type=int, default=d.min_cells, help="min cells with a read (%(default)s)")
    p.add_argument("--min-intron", type=int, default=d.min_intron, help="min intron length (%(default)s)")
    p.add_argument("--max-intron", type=int, default=d.max_intron, help="max intron length (%(default)s)")
    p.add_argument(
        "--motif",
        choices=("canonical", "any"),
        default=d.motif,
        help="canonical: drop known non-canonical motifs and unknown strands (%(default)s)",
    )
    p.add_argument(
        "--min-site-usage",
        type=float,
        default=d.min_site_usage,
        help="min fraction of a splice site's reads a junction must carry (%(default)s)",
    )
    p.add_argument(
        "--min-junctions", type=int, default=d.min_junctions, help="min junctions per event (%(default)s)"
    )
    p.add_argument(
        "--max-junctions", type=int, default=d.max_junctions, help="max junctions per event (%(default)s)"
    )
    p.add_argument(
        "--warn-min-events",
        type=int,
        default=WARN_MIN_EVENTS,
        help="warn when fewer ATSEs than this remain after filtering (%(default)s)",
    )
    p.add_argument("--out", required=True, help="output events.tsv")
    p.set_defaults(func=run)
    return p


def summary_path(out: str | Path) -> Path:
    """Sidecar JSON of an events table (filters and counts)."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".tsv") + ".summary.json")


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi atse``; returns the exit status (0: every output written)."""
    from splicevi._io import atomic_path, require_file
    from splicevi.data.atse import AtseParams, annotate_events, group_atse
    from splicevi.data.io import read_junction_var

    params = AtseParams(
        min_reads=args.min_reads,
        min_cells=args.min_cells,
        min_intron=args.min_intron,
        max_intron=args.max_intron,
        motif=args.motif,
        min_site_usage=args.min_site_usage,
        min_junctions=args.min_junctions,
        max_junctions=args.max_junctions,
    )
    var = read_junction_var(require_file(args.junctions, "junctions .h5ad"))
    ann = None
    n_strand_from_gtf = 0
    if args.gtf:
        from splicevi.data.gtf import assign_genes, check_chromosomes, infer_strand, read_gtf

        # Read and check the GTF first: a naming mismatch should fail before any work, and strands
        # it gives to '.' junctions let them pass the motif/strand filter.
        ann = read_gtf(args.gtf)
        frac_chrom = check_chromosomes(var["chrom"], ann, junctions_source=args.junctions)
        var, n_strand_from_gtf = infer_strand(var, ann)
    events, report = group_atse(var, params)
    if events.empty:
        raise ValueError(
            f"{args.junctions}: no ATSE left after filtering ({report['removed']}); relax the filters "
            "(e.g. --min-reads, --min-cells, --min-site-usage) or check the input"
        )
    report["gtf"] = args.gtf or ""
    if ann is not None:
        report["frac_chrom_in_gtf"] = frac_chrom
        report["n_strand_from_gtf"] = n_strand_from_gtf
        events = annotate_events(events, assign_genes(events, ann))
        per_event = events.drop_duplicates(EVENT_ID_COLUMN)
        report["n_events_with_gene"] = int(per_event["gene_id"].notna().sum())
        # A GTF of some chromosomes only (a test annotation, one contig set): say how much it covers.
        gtf_chroms = set(ann.genes["chrom"].astype(str))
        outside = ~per_event["chrom"].astype(str).isin(gtf_chroms)
        report["n_events_outside_gtf"] = int(outside.sum())
        if outside.any():
            missing = sorted(set(per_event.loc[outside, "chrom"].astype(str)))
            report["gtf_partial"] = (
                f"the GTF covers {frac_chrom:.0%} of the junctions' chromosomes: {report['n_events_with_gene']:,} of "
                f"{len(per_event):,} events ({report['n_events_with_gene'] / len(per_event):.0%}) have a gene; "
                f"{int(outside.sum()):,} events lie on chromosomes absent from it ({', '.join(missing[:5])}"
                f"{', ...' if len(missing) > 5 else ''})"
            )
            log.warning("%s: %s", args.gtf, report["gtf_partial"])
    else:
        events["gene_id"] = ""
        events["gene_name"] = ""
    report["junctions_file"] = str(args.junctions)
    if report["n_events"] < args.warn_min_events:
        msg = (
            f"only {report['n_events']} ATSEs remain after filtering (fewer than --warn-min-events "
            f"{args.warn_min_events}): too few to model or test well; relax the filters"
        )
        log.warning(msg)
        report["warnings"] = [msg]
    with atomic_path(args.out) as tmp, atomic_path(summary_path(args.out)) as tmp_json:
        events.to_csv(tmp, sep="\t", index=False)
        tmp_json.write_text(json.dumps(report, indent=1))
    sizes = events.groupby(EVENT_ID_COLUMN).size()
    rows = [("junctions in", report["n_junctions_in"])]
    rows += [(f"removed: {k}", v) for k, v in report["removed"].items()]
    rows += [
        ("junctions kept", report["n_junctions_kept"]),
        ("events", report["n_events"]),
        ("junctions per event (median / max)", f"{sizes.median():g} / {sizes.max()}"),
    ]
    if args.gtf:
        rows.append(("strand taken from the GTF", report["n_strand_from_gtf"]))
        rows.append(("events with a gene", report["n_events_with_gene"]))
        if report.get("gtf_partial"):
            rows.append(("WARNING partial GTF", report["gtf_partial"]))
    rows += [("warning", w) for w in report.get("warnings", [])]
    rows.append(("wrote", f"{args.out}, {summary_path(args.out)}"))
    print_summary("splicevi atse", rows)
    return 0
