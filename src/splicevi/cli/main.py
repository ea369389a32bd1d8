"""``splicevi`` command line: one subcommand per workflow stage.

Each subcommand lives in its own module ``splicevi.cli.<name>`` that defines ``add_parser(subparsers)``
(registers its arguments, sets ``func``) and a ``run(args)`` function. Modules are imported lazily
by name so ``splicevi --help`` stays fast and a broken optional stage does not block the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from splicevi import __version__

#: Subcommands in workflow order: (module name, one-line help).
SUBCOMMANDS = (
    ("simulate", "simulate input files (STARsolo / SJ.out.tab) with planted truth"),
    ("ingest", "read junction tables and gene counts into AnnData files"),
    ("atse", "filter junctions and group them into ATSEs"),
    ("assemble", "mask and assemble the model-ready .h5mu"),
    ("train", "train a SpliceVI model on an .h5mu"),
    ("embed", "latent representations and UMAP"),
    ("cluster", "Leiden clusters on the joint latent"),
    ("ds", "differential splicing tables (per junction and per ATSE)"),
    ("de", "differential expression tables"),
    ("plot", "figures for the report"),
    ("export", "LeafCutter counts, BED12 tracks, per-modality .h5ad"),
)


class CLIError(Exception):
    """An error meant for the user: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="splicevi",
        description="Single-cell expression + splicing analysis with SpliceVI.",
    )
    parser.add_argument("--version", action="version", version=f"splicevi {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"splicevi.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"splicevi.cli.{name}":
                continue  # stage not part of this installation
            raise
        module.add_parser(sub, help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``splicevi`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except (CLIError, ValueError, FileNotFoundError) as err:
        print(f"splicevi {args.command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
