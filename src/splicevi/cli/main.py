"""``splicevi`` command line: one subcommand per workflow stage.

Each subcommand lives in its own module ``splicevi.cli.<name>`` that defines ``add_parser(subparsers)``
(registers its arguments, sets ``func``) and a ``run(args)`` function. Modules are imported lazily
by name so ``splicevi --help`` stays fast and a broken optional stage does not block the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading

from splicevi import __version__
from splicevi._io import (
    OutputWriteError,
    clear_stop,
    hdf5_left_broken,
    in_critical_section,
    publish_together,
    raise_if_stopped,
    request_stop,
)

from ._errors import (
    EXIT_CODES_HELP,
    EXIT_DATA,
    EXIT_OUTPUT,
    EXIT_USAGE,
    Interrupted,
    OutputError,
    UsageError,
)
from ._help import plain_help
from ._outputs import check_outputs

#: Subcommands in workflow order: (module name, one-line help).
SUBCOMMANDS = (
    ("simulate", "simulate input files (STARsolo / SJ.out.tab) with planted truth"),
    ("ingest", "read junction tables and gene counts into AnnData files"),
    ("merge", "merge per-sample ingest outputs into one cohort (cell ids <sample>_<barcode>)"),
    ("atse", "filter junctions and group them into ATSEs"),
    ("assemble", "mask and assemble the model-ready .h5mu"),
    ("qc", "per-sample and overall QC tables (cells, junctions, ATSEs, reads per cell)"),
    ("train", "train a SpliceVI model on an .h5mu"),
    ("embed", "latent representations and UMAP"),
    ("cluster", "Leiden clusters on the joint latent"),
    ("ds", "differential splicing tables (per junction and per ATSE)"),
    ("de", "differential expression tables"),
    ("plot", "figures for the report"),
    ("export", "LeafCutter counts, BED12 tracks, per-modality .h5ad"),
    ("summary", "the report's first page: what the run found (inputs, cells, calls, top events)"),
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="splicevi",
        description="Single-cell expression + splicing analysis with SpliceVI.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    plain_help(parser)
    return parser


def _raise_interrupted(signum, frame) -> None:
    exc = Interrupted(signum)
    request_stop(exc)  # kept: the exception may be swallowed where it is raised (a C callback)
    if not in_critical_section():  # never between two renames of the outputs (they roll back instead)
        raise exc


def _data_error_message(err: Exception) -> str:
    """One line for an input problem; OSError's text lacks the path unless we add it."""
    if isinstance(err, OSError) and not isinstance(err, FileNotFoundError) and err.filename:
        return f"{err.filename}: {err.strerror or err}; check that it is the right file and readable"
    return str(err)


def _one_line(err: BaseException) -> str:
    text = err.strerror if isinstance(err, OutputWriteError) and err.strerror else str(err)
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``splicevi`` console script; returns the exit status (see ``--help``)."""
    status = _main(argv)
    if argv is None and hdf5_left_broken():
        # A failed HDF5 write leaves the library holding a half-closed file that crashes the
        # interpreter's exit (SIGSEGV). The error is reported: end now, without that clean-up.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    # SIGTERM (a scheduler's time limit, Snakemake stopping a job) and SIGINT end the command with
    # 143 / 130 and save nothing. Lightning adds its own SIGTERM handler during training and calls
    # the one installed here too; without it, training would stop early and report success.
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals need the main thread
    signals = (signal.SIGTERM, signal.SIGINT) if in_main_thread else ()
    previous = {s: signal.signal(s, _raise_interrupted) for s in signals}
    try:
        clear_stop()
        check_outputs(args)
        # every output of the command is published together at the end, or none is
        with publish_together():
            result = args.func(args)
        try:
            raise_if_stopped()  # a stop that came after the commit point: the outputs are complete
        except Interrupted as err:
            print(f"splicevi {args.command}: {err} received after every output was written", file=sys.stderr)
            return 128 + err.signum
    except Interrupted as err:
        print(f"splicevi {args.command}: {err} received: stopped, nothing written", file=sys.stderr)
        return 128 + err.signum
    except UsageError as err:
        print(f"splicevi {args.command}: usage error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (OutputError, OutputWriteError) as err:
        print(f"splicevi {args.command}: output error: {_one_line(err)}", file=sys.stderr)
        return EXIT_OUTPUT
    except (ValueError, OSError) as err:  # InputError and FileNotFoundError included
        print(
            f"splicevi {args.command}: error: {' '.join(_data_error_message(err).split())}", file=sys.stderr
        )
        return EXIT_DATA
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
