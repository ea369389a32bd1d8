"""``splicevi simulate``: write simulated input files with planted truth.

``--format starsolo`` writes ``Solo.out/SJ/raw`` (matrix.mtx, barcodes.tsv, features.tsv = SJ.out.tab)
plus ``Solo.out/Gene/filtered`` and the run's ``SJ.out.tab``; ``--format sj_out_tab`` writes one
``<cell>SJ.out.tab`` and ``<cell>ReadsPerGene.out.tab`` per cell with sample sheets
(``samples.tsv`` for junctions, ``genes_samples.tsv`` for gene counts). Both write
``truth_cells.tsv``, ``truth_junctions.tsv`` and ``truth_events.tsv``.

``--n-samples N`` (N >= 2) writes a cohort instead: the cells are spread over N samples (donors) whose
PSI varies from sample to sample (``--sample-concentration``), the first half ``control`` and the rest
``treated`` (``--condition-fraction`` of the ATSEs move in the treated samples). Each sample gets its
own folder in the layout above, with the same junction coordinates in every sample, and
``samples.tsv`` is a cohort sample sheet (sample, input paths, condition) for ``splicevi merge`` and
the cohort workflow; the truth of all cells is at the top.
"""

from __future__ import annotations

import argparse

from ._errors import UsageError
from ._summary import print_summary


def add_parser(subparsers, help_text: str) -> argparse.ArgumentParser:
    """Register ``splicevi simulate`` and its arguments."""
    p = subparsers.add_parser(
        "simulate", help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="output folder (replaced atomically)")
    p.add_argument(
        "--format", required=True, choices=("starsolo", "sj_out_tab"), help="layout of the input files"
    )
    p.add_argument("--n-cells", type=int, default=600, help="cells (%(default)s)")
    p.add_argument("--n-genes", type=int, default=300, help="genes (%(default)s)")
    p.add_argument("--n-events", type=int, default=200, help="ATSEs (%(default)s)")
    p.add_argument(
        "--n-types",
        type=int,
        default=4,
        help="cell types; the last two differ only in splicing (%(default)s)",
    )
    p.add_argument("--n-batches", type=int, default=1, help="batches (%(default)s)")
    p.add_argument(
        "--observed-fraction",
        type=float,
        default=0.15,
        help="fraction of (cell, event) pairs with reads: ~0.15 Smart-seq2, ~0.03 droplet (%(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (%(default)s)")
    p.add_argument(
        "--n-samples",
        type=int,
        default=0,
        help="write a cohort of this many samples (>= 2; 0: one run, no samples) (%(default)s)",
    )
    p.add_argument(
        "--sample-concentration",
        type=float,
        default=10.0,
        help="Dirichlet concentration of a sample's PSI around its cell type's PSI; lower = more "
        "donor-to-donor variation (%(default)s)",
    )
    p.add_argument(
        "--condition-fraction",
        type=float,
        default=0.0,
        help="fraction of ATSEs whose PSI moves in the treated samples (%(default)s)",
    )
    p.add_argument("--gzip", action="store_true", help="write STARsolo matrices as matrix.mtx.gz")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``splicevi simulate``; returns the exit status (0: every output written)."""
    from splicevi.data.simulate import simulate
    from splicevi.data.simulate_files import write_cohort, write_simulation

    for name in ("n_cells", "n_genes", "n_events"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.n_samples < 0 or args.n_samples == 1:
        raise UsageError("--n-samples must be 0 (no samples) or at least 2 (a cohort)")
    if args.sample_concentration <= 0:
        raise UsageError("--sample-concentration must be positive")
    if not 0 <= args.condition_fraction <= 1:
        raise UsageError("--condition-fraction must be in [0, 1]")
    kwargs = {}
    if args.n_samples:
        kwargs = dict(
            n_samples=args.n_samples,
            sample_concentration=args.sample_concentration,
            frac_condition_events=args.condition_fraction,
        )
    sim = simulate(
        n_cells=args.n_cells,
        n_genes=args.n_genes,
        n_events=args.n_events,
        n_types=args.n_types,
        n_batches=args.n_batches,
        observed_fraction=args.observed_fraction,
        seed=args.seed,
        **kwargs,
    )
    if args.n_samples:
        info = write_cohort(
            sim, args.out, fmt=args.format, progress=not args.no_progress, gzip_matrices=args.gzip
        )
    else:
        info = write_simulation(
            sim, args.out, fmt=args.format, progress=not args.no_progress, gzip_matrices=args.gzip
        )
    k = sim.junction_counts
    extra = []
    if args.n_samples:
        per = sim.obs.groupby("sample", observed=True).size()
        extra = [
            ("samples (cells)", ", ".join(f"{s} ({n})" for s, n in per.items())),
            ("sample sheet", info["sheet"]),
        ]
    print_summary(
        "splicevi simulate",
        [
            *extra,
            ("format", args.format),
            ("cells", sim.obs.shape[0]),
            ("cell types", ", ".join(sim.obs["cell_type"].cat.categories)),
            ("genes", sim.genes.shape[0]),
            ("junctions", sim.junctions.shape[0]),
            ("events (DS)", f"{sim.events.shape[0]:,} ({int(sim.events['is_ds'].sum()):,})"),
            ("fraction of cell × junction with reads", k.nnz / max(k.shape[0] * k.shape[1], 1)),
            ("wrote", f"{args.out} ({info['n_files']:,} files)"),
        ],
    )
    return 0
