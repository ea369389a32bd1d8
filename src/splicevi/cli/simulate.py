"""``splicevi simulate``: write simulated input files with planted truth.

``--format starsolo`` writes ``Solo.out/SJ/raw`` (matrix.mtx, barcodes.tsv, features.tsv = SJ.out.tab)
plus ``Solo.out/Gene/filtered`` and the run's ``SJ.out.tab``; ``--format sj_out_tab`` writes one
``<cell>SJ.out.tab`` and ``<cell>ReadsPerGene.out.tab`` per cell with sample sheets
(``samples.tsv`` for junctions, ``genes_samples.tsv`` for gene counts). Both write
``truth_cells.tsv``, ``truth_junctions.tsv`` and ``truth_events.tsv``.
"""

from __future__ import annotations

import argparse

from ._errors import UsageError
from ._summary import print_summary


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi simulate`` and its arguments."""
    p = subparsers.add_parser("simulate", help=help_text, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.add_argument("--format", required=True, choices=("starsolo", "sj_out_tab"), help="layout of the input files")
    p.add_argument("--n-cells", type=int, default=600, help="cells (%(default)s)")
    p.add_argument("--n-genes", type=int, default=300, help="genes (%(default)s)")
    p.add_argument("--n-events", type=int, default=200, help="ATSEs (%(default)s)")
    p.add_argument("--n-types", type=int, default=4, help="cell types; the last two differ only in splicing "
                                                          "(%(default)s)")
    p.add_argument("--n-batches", type=int, default=1, help="batches (%(default)s)")
    p.add_argument("--observed-fraction", type=float, default=0.15,
                   help="fraction of (cell, event) pairs with reads: ~0.15 Smart-seq2, ~0.03 droplet (%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    p.add_argument("--gzip", action="store_true", help="write STARsolo matrices as matrix.mtx.gz")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi simulate``; returns the exit status (0: every output written)."""
    from splicevi.data.simulate import simulate
    from splicevi.data.simulate_files import write_simulation

    for name in ("n_cells", "n_genes", "n_events"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    sim = simulate(n_cells=args.n_cells, n_genes=args.n_genes, n_events=args.n_events, n_types=args.n_types,
                   n_batches=args.n_batches, observed_fraction=args.observed_fraction, seed=args.seed)
    info = write_simulation(sim, args.out, fmt=args.format, progress=not args.no_progress,
                            gzip_matrices=args.gzip)
    k = sim.junction_counts
    print_summary("splicevi simulate", [
        ("format", args.format),
        ("cells", sim.obs.shape[0]),
        ("cell types", ", ".join(sim.obs["cell_type"].cat.categories)),
        ("genes", sim.genes.shape[0]),
        ("junctions", sim.junctions.shape[0]),
        ("events (DS)", f"{sim.events.shape[0]:,} ({int(sim.events['is_ds'].sum()):,})"),
        ("fraction of cell × junction with reads", k.nnz / max(k.shape[0] * k.shape[1], 1)),
        ("wrote", f"{args.out} ({info['n_files']:,} files)"),
    ])
    return 0
