"""``splicevi export KIND``: LeafCutter count tables, BED12 tracks for IGV, per-modality ``.h5ad`` files."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from splicevi._io import atomic_path, require_file, write_x_as_layer
from splicevi.data.layers import JUNCTION_COUNTS

from .._constants import EVENT_ID_COLUMN
from ._common import read_mudata
from ._errors import UsageError

log = logging.getLogger("splicevi")


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi export`` and its kinds."""
    p = subparsers.add_parser(
        "export", help=help_text, description="Write results in formats other tools read."
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    k = kinds.add_parser(
        "leafcutter", help="LeafCutter-style count table (k/n per group of cells or per cell)"
    )
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster` (or `assemble`)")
    group = k.add_mutually_exclusive_group()
    group.add_argument("--groupby", default="leiden", help="cell annotation pooled into pseudobulk samples")
    group.add_argument("--per-cell", action="store_true", help="one column per cell instead of per group")
    k.add_argument(
        "--replicates",
        default=None,
        help="annotation kept apart within each group (e.g. sample): one column per replicate and group, "
        "named <replicate>.<groupby>_<group>, the replicates leafcutter_ds needs",
    )
    k.add_argument("--out", required=True, help="output file (gzip-compressed when it ends with .gz)")
    k.add_argument(
        "--out-groups",
        default=None,
        help="LeafCutter groups file (<sample> <group> per line; keep the two groups to compare)",
    )
    k.set_defaults(func=run_leafcutter)

    k = kinds.add_parser("bed", help="BED12 of the junctions or ATSEs of a DS table, scored for IGV")
    k.add_argument("--mdata", required=True, help="the .h5mu the table was computed on")
    k.add_argument("--table", required=True, help="ds_junctions.tsv or ds_events.tsv from `splicevi ds`")
    k.add_argument(
        "--contrast", default=None, help="contrast to export (required when the table has several)"
    )
    k.add_argument("--out", required=True, help="output .bed")
    k.set_defaults(func=run_bed)

    k = kinds.add_parser("h5ad", help="one .h5ad per modality (with clusters, latents, UMAP, kNN graph)")
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster`")
    k.add_argument("--out-dir", required=True, help="folder for <modality>.h5ad")
    k.set_defaults(func=run_h5ad)
    return p


def run_leafcutter(args: argparse.Namespace) -> int:
    """Write the count table."""
    from splicevi.tl.export import (
        leafcutter_counts,
        pseudobulk_samples,
        write_leafcutter,
        write_leafcutter_groups,
    )

    if args.per_cell and (args.replicates or args.out_groups):
        raise UsageError("--per-cell has no groups: leave out --replicates and --out-groups")
    mdata = read_mudata(args.mdata)
    table = leafcutter_counts(mdata, None if args.per_cell else args.groupby, args.replicates)
    write_leafcutter(table, args.out)
    if args.out_groups:
        write_leafcutter_groups(pseudobulk_samples(mdata, args.groupby, args.replicates)[1], args.out_groups)
    log.info("leafcutter counts: %d junctions × %d samples -> %s", table.shape[0], table.shape[1], args.out)
    return 0


def run_bed(args: argparse.Namespace) -> int:
    """Write the BED12 track of a DS table."""
    from splicevi.tl.export import events_bed, junctions_bed, select_contrast, write_bed

    path = require_file(args.table, "DS table")
    table = pd.read_csv(path, sep="\t", dtype={"contrast": str, "junction_id": str, EVENT_ID_COLUMN: str})
    try:
        table = select_contrast(table, args.contrast)
    except ValueError as err:  # a missing or wrong --contrast is a usage error, not bad data
        raise UsageError(f"{path}: {err}") from err
    mdata = read_mudata(args.mdata)
    if "junction_id" in table.columns:
        bed = junctions_bed(mdata, table)
    elif EVENT_ID_COLUMN in table.columns:
        bed = events_bed(mdata, table)
    else:
        raise ValueError(f"{path}: no 'junction_id' or 'event_id' column; use a table from `splicevi ds`")
    write_bed(bed, args.out)
    log.info("BED12: %d records -> %s", len(bed), args.out)
    return 0


def run_h5ad(args: argparse.Namespace) -> int:
    """Write one .h5ad per modality."""
    from splicevi.tl.export import modality_anndata

    mdata = read_mudata(args.mdata)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in mdata.mod:
        adata = modality_anndata(mdata, name)
        with atomic_path(out / f"{name}.h5ad") as tmp:
            write_x_as_layer(adata, tmp, JUNCTION_COUNTS)
        log.info("%s: %d cells × %d features -> %s", name, adata.n_obs, adata.n_vars, out / f"{name}.h5ad")
    return 0
