"""``splicevi plot KIND``: the report's figures (training curves, UMAPs, volcanoes, PSI, coverage, arcs)."""

from __future__ import annotations

import argparse

import pandas as pd

from splicevi._io import require_file

from .._constants import EVENT_ID_COLUMN


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi plot`` and its figure kinds."""
    p = subparsers.add_parser(
        "plot", help=help_text, description="Figures of the workflow report (PNG or SVG)."
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)

    k = kinds.add_parser("training", help="training curves from history.tsv")
    k.add_argument("--history", required=True, help="history.tsv from `splicevi train`")
    k.set_defaults(func=run_training)

    k = kinds.add_parser("umap", help="UMAP coloured by annotations / QC")
    source = k.add_mutually_exclusive_group(required=True)
    source.add_argument("--cells", help="cells.tsv from `splicevi cluster`")
    source.add_argument(
        "--mdata", help=".h5mu from `splicevi cluster` (the same cell table is derived from it)"
    )
    k.add_argument(
        "--color", nargs="+", required=True, help="annotations to colour by; 'qc' for the QC metrics"
    )
    k.set_defaults(func=run_umap)

    k = kinds.add_parser("volcano", help="volcano plots of a DS or DE table")
    k.add_argument("--table", required=True, help="TSV from `splicevi ds` or `splicevi de`")
    k.add_argument(
        "--kind",
        dest="table_kind",
        choices=["ds", "de"],
        default="ds",
        help="table kind: ds (splicing) or de (expression)",
    )
    k.set_defaults(func=run_volcano)

    k = kinds.add_parser("psi", help="observed PSI of the top DS junctions per group")
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster`")
    k.add_argument("--table", required=True, help="per-junction table from `splicevi ds`")
    k.add_argument("--groupby", default="leiden", help="cell annotation of the groups shown")
    k.add_argument("--n-top", type=int, default=8, help="top events per contrast")
    k.set_defaults(func=run_psi)

    k = kinds.add_parser("coverage", help="coverage of the top DS events per group")
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster`")
    k.add_argument("--table", required=True, help="per-ATSE table from `splicevi ds`")
    k.add_argument("--groupby", default="leiden", help="cell annotation of the groups shown")
    k.add_argument("--n-top", type=int, default=8, help="top events per contrast")
    k.set_defaults(func=run_coverage)

    k = kinds.add_parser("arcs", help="arc (sashimi-style) plots of the top DS events, per contrast group")
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster`")
    k.add_argument("--table", required=True, help="per-ATSE (or per-junction) table from `splicevi ds`")
    k.add_argument("--n-top", type=int, default=2, help="events per contrast (at most 12 overall)")
    k.add_argument("--gtf", default=None, help="GTF whose exons are drawn as a track under the arcs")
    k.set_defaults(func=run_arcs)

    k = kinds.add_parser("psi-umap", help="UMAP coloured by the observed PSI of the top DS junctions")
    k.add_argument("--mdata", required=True, help=".h5mu from `splicevi cluster`")
    k.add_argument("--table", required=True, help="per-junction table from `splicevi ds`")
    k.add_argument("--n-top", type=int, default=1, help="junctions per contrast (at most 9 overall)")
    k.set_defaults(func=run_psi_umap)

    for name in ("psi", "coverage", "arcs", "psi-umap"):
        kinds.choices[name].add_argument(
            "--min-cells",
            type=int,
            default=10,
            help="show only events observed in at least this many cells on both sides of the contrast",
        )

    for sub in kinds.choices.values():
        sub.add_argument("--out", required=True, help="output figure (.png or .svg)")
    return p


#: Columns read as text (cluster names such as "1" must not become numbers).
_TABLE_DTYPES = {
    "contrast": str,
    "groupby": str,
    "group1": str,
    "group2": str,
    "junction_id": str,
    EVENT_ID_COLUMN: str,
}


def _read_table(path: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(require_file(path, "table"), sep="\t", **kwargs)


def run_training(args: argparse.Namespace) -> int:
    """Training curves."""
    from splicevi import pl

    history = _read_table(args.history, index_col=0)
    pl.save_figure(pl.training_curves(history), args.out)
    return 0


def run_umap(args: argparse.Namespace) -> int:
    """UMAP panels."""
    from splicevi import pl

    if args.mdata:
        cells = _mdata(args.mdata)
    else:
        dtype = {c: str for c in args.color if c not in ("qc", "annotations")}
        cells = _read_table(args.cells, index_col=0, dtype=dtype, keep_default_na=True)
    pl.save_figure(pl.umap(cells, args.color), args.out)
    return 0


def run_volcano(args: argparse.Namespace) -> int:
    """Volcano plots."""
    from splicevi import pl

    table = _read_table(args.table, dtype={"contrast": str, "group1": str, "group2": str})
    pl.save_figure(pl.volcano(table, kind=args.table_kind), args.out)
    return 0


def _mdata(path):
    from ._common import read_mudata

    return read_mudata(path)


def run_psi(args: argparse.Namespace) -> int:
    """PSI dot plot."""
    from splicevi import pl

    table = _read_table(args.table, dtype=_TABLE_DTYPES)
    pl.save_figure(
        pl.top_events_psi(_mdata(args.mdata), table, args.groupby, args.n_top, args.min_cells), args.out
    )
    return 0


def run_coverage(args: argparse.Namespace) -> int:
    """Coverage box plots."""
    from splicevi import pl

    table = _read_table(args.table, dtype=_TABLE_DTYPES)
    pl.save_figure(
        pl.event_coverage(_mdata(args.mdata), table, args.groupby, args.n_top, args.min_cells), args.out
    )
    return 0


def run_arcs(args: argparse.Namespace) -> int:
    """Arc plots of the top events."""
    from splicevi import pl

    table = _read_table(args.table, dtype=_TABLE_DTYPES)
    pl.save_figure(
        pl.top_event_arcs(_mdata(args.mdata), table, args.n_top, args.min_cells, gtf=args.gtf), args.out
    )
    return 0


def run_psi_umap(args: argparse.Namespace) -> int:
    """UMAP coloured by PSI of the top junctions."""
    from splicevi import pl

    table = _read_table(args.table, dtype=_TABLE_DTYPES)
    pl.save_figure(pl.top_junctions_umap(_mdata(args.mdata), table, args.n_top, args.min_cells), args.out)
    return 0
