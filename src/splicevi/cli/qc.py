"""``splicevi qc``: per-sample and overall QC tables (cells, junctions, ATSEs, reads, observed fraction).

Reads the model-ready ``data.h5mu`` (splicing modality), the ingest/merge ``junctions.h5ad`` (cells
per sample before assembly) and ``events.summary.json`` of ``splicevi atse`` (junctions per filter).
"""

from __future__ import annotations

import argparse
import json

from ._summary import print_summary


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi qc`` and its arguments."""
    p = subparsers.add_parser(
        "qc", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--mdata", required=True, help="data.h5mu from `splicevi assemble`")
    p.add_argument(
        "--junctions", required=True, help="junctions.h5ad from `splicevi ingest` or `splicevi merge`"
    )
    p.add_argument(
        "--events", required=True, help="events.tsv from `splicevi atse` (its .summary.json is read)"
    )
    p.add_argument("--out-samples", required=True, help="output TSV, one row per sample")
    p.add_argument("--out-overall", required=True, help="output TSV, metric / value")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi qc``; returns the exit status (0: every output written)."""
    import anndata as ad
    import mudata as md

    from splicevi._io import atomic_path, require_file
    from splicevi.data.qc import SINGLE, qc_tables

    from .atse import summary_path

    splicing = md.read_h5ad(str(require_file(args.mdata, "data .h5mu")), mod="splicing")
    jun = ad.read_h5ad(require_file(args.junctions, "junctions .h5ad"), backed="r")
    merge = jun.uns.get("splicevi_merge")
    ingested = (
        {s: int(v["n_cells"]) for s, v in merge["samples"].items()} if merge else {SINGLE: int(jun.n_obs)}
    )
    jun.file.close()
    side = summary_path(args.events)
    atse = json.loads(side.read_text()) if side.exists() else {}
    per_sample, overall = qc_tables(splicing, ingested, atse)
    with atomic_path(args.out_samples) as tmp_s, atomic_path(args.out_overall) as tmp_o:
        per_sample.to_csv(tmp_s, sep="\t", index=False, float_format="%.4g")
        overall.to_csv(tmp_o, sep="\t", index=False)
    print_summary(
        "splicevi qc",
        [*overall.itertuples(index=False, name=None), ("wrote", f"{args.out_samples}, {args.out_overall}")],
    )
    return 0
