"""``splicevi assemble``: junction counts + events (+ gene counts) → model-ready ``data.h5mu``.

Builds ``mdata["splicing"]`` with the CSR layer cell_by_junction_matrix (k), from which the model and
every stage derive n, PSI and the mask; with --published-layout also the layers cell_by_cluster_matrix
(n, the ATSE total on every junction of an observed ATSE), junc_ratio (k/n, X) and psi_mask (n > 0),
and ``mdata["rna"]`` (raw counts; ``length_norm`` with --transcript-lengths) on the common cells.
Without --genes the file holds the splicing modality only.
"""

from __future__ import annotations

import argparse
import json
import logging

from ._errors import UsageError
from ._summary import print_summary

log = logging.getLogger("splicevi")
#: Defaults of ``--warn-min-cells`` / ``--warn-min-events``.
WARN_MIN_CELLS = 20
WARN_MIN_EVENTS = 20


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi assemble`` and its arguments."""
    p = subparsers.add_parser(
        "assemble", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--junctions", required=True, help="junctions.h5ad from `splicevi ingest`")
    p.add_argument("--events", required=True, help="events.tsv from `splicevi atse`")
    p.add_argument("--genes", help="genes.h5ad from `splicevi ingest`")
    p.add_argument(
        "--min-cell-reads",
        type=int,
        default=0,
        help="drop cells with fewer junction reads on the ATSE junctions (%(default)s; cells with no "
        "reads in any modality are always dropped)",
    )
    p.add_argument("--transcript-lengths", help="TSV gene_id, length: adds the rna layer length_norm")
    p.add_argument(
        "--published-layout",
        action="store_true",
        help="also write the layers n, PSI (X) and mask of the reference implementation's layout "
        "(four times the size; nothing in splicevi reads them)",
    )
    p.add_argument(
        "--warn-min-cells",
        type=int,
        default=WARN_MIN_CELLS,
        help="warn when fewer cells than this remain (%(default)s)",
    )
    p.add_argument(
        "--warn-min-events",
        type=int,
        default=WARN_MIN_EVENTS,
        help="warn when fewer ATSEs than this remain (%(default)s)",
    )
    p.add_argument(
        "--highly-variable-atses",
        type=int,
        default=None,
        metavar="N",
        help="mark the N most variable ATSEs in the splicing var (highly_variable and the hva_* "
        "statistic of splicevi.pp.highly_variable_atses); a model with "
        "splicing_encoder_atses='highly_variable' reads them",
    )
    p.add_argument("--out", required=True, help="output .h5mu")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi assemble``; returns the exit status (0: every output written)."""
    import warnings

    # mudata 0.3 warns on every update about a default that changes in 0.4; we set obs explicitly.
    warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")

    from splicevi._io import atomic_path, require_file, write_x_as_layer
    from splicevi.data.assemble import assemble, read_events, read_transcript_lengths
    from splicevi.data.layers import JUNCTION_COUNTS

    from .atse import summary_path

    if args.highly_variable_atses is not None and args.highly_variable_atses < 1:
        raise UsageError(f"--highly-variable-atses must be at least 1, got {args.highly_variable_atses}")
    events = read_events(require_file(args.events, "events table"))
    from splicevi.data.io import read_anndata

    junctions = read_anndata(args.junctions, "junctions .h5ad", made_by="`splicevi ingest`")
    genes = read_anndata(args.genes, "genes .h5ad", made_by="`splicevi ingest`") if args.genes else None
    lengths = (
        read_transcript_lengths(require_file(args.transcript_lengths, "transcript lengths"))
        if args.transcript_lengths
        else None
    )
    provenance = {
        "inputs": {
            "junctions": args.junctions,
            "events": args.events,
            "genes": args.genes or "",
            "transcript_lengths": args.transcript_lengths or "",
        },
        "ingest": dict(junctions.uns.get("splicevi_ingest", {})),
    }
    side = summary_path(args.events)
    if side.exists():
        provenance["atse"] = json.loads(side.read_text())
    mdata, report = assemble(
        junctions,
        events,
        genes,
        min_cell_reads=args.min_cell_reads,
        transcript_lengths=lengths,
        events_source=args.events,
        provenance=provenance,
        published_layout=args.published_layout,
    )
    warnings_ = low_data_warnings(
        report["n_cells"], report["n_events"], args.warn_min_cells, args.warn_min_events
    )
    for msg in warnings_:
        log.warning(msg)
    if warnings_:
        # Kept in the file, so that later stages and the report can say it too.
        mdata.uns["splicevi_warnings"] = list(warnings_)
    if args.highly_variable_atses is not None:
        from splicevi.pp import highly_variable_atses

        highly_variable_atses(mdata, n_top=args.highly_variable_atses)
    with atomic_path(args.out) as tmp:
        write_x_as_layer(mdata, tmp, JUNCTION_COUNTS, modality="splicing")
    rows = [("cells in junctions file", report["n_cells_in"])]
    if "barcodes" in report:
        b = report["barcodes"]
        rows += [
            ("cells with gene counts too", b["n_common"]),
            ("dropped: junctions only", b["n_junction_only"]),
            ("dropped: genes only", b["n_gene_only"]),
        ]
    rows += [
        ("dropped: too few junction reads", report["n_cells_dropped_min_reads"]),
        ("cells", report["n_cells"]),
        ("junctions", report["n_junctions"]),
        ("events (ATSEs)", report["n_events"]),
        ("genes", report["n_genes"] if genes is not None else "none (splicing-only file)"),
        ("fraction of cell × junction observed", report["frac_observed"]),
        ("fraction of cell × event observed", report["frac_cell_event_observed"]),
        *(("warning", w) for w in warnings_),
        ("wrote", args.out),
    ]
    print_summary("splicevi assemble", rows)
    return 0


def low_data_warnings(n_cells: int, n_events: int, min_cells: int, min_events: int) -> list[str]:
    """Messages for too few cells or ATSEs left in the assembled data (empty when enough remain)."""
    out = []
    if n_cells < min_cells:
        out.append(
            f"only {n_cells} cells remain (fewer than --warn-min-cells {min_cells}): clusters and "
            "differential tests on so few cells are unreliable"
        )
    if n_events < min_events:
        out.append(
            f"only {n_events} ATSEs remain (fewer than --warn-min-events {min_events}): too few to "
            "model or test well; relax the ATSE filters"
        )
    return out
