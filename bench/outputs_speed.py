"""Wall time of the user-facing outputs on a large synthetic MuData: table annotation, figures, exports.

The MuData is built directly (no model): cells × junctions CSR junction counts in ATSEs of 2-4
junctions, a few clusters, a 2-D embedding and DS tables of every junction / ATSE for each
cluster-vs-rest contrast. Each step is timed on its own:

- ``annotate``: coordinates / genes / annotation joined onto both DS tables (``splicevi ds``'s writer);
- ``well_observed``: the min-cells filter of the figures (junction table, every contrast);
- ``arcs``, ``umap_psi``, ``volcano``: the report figures (drawn, not saved);
- ``leafcutter``: the pseudobulk count table; ``bed_junctions``, ``bed_events``: BED12 of one contrast;
  ``h5ad``: one modality as stand-alone AnnData.

Writes JSON (stdout and --out).

Usage::

    python bench/outputs_speed.py --out bench/results/outputs_speed.json
    python bench/outputs_speed.py --quick
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import anndata as ad
import matplotlib
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

matplotlib.use("Agg")  # a script: no display


def synthetic(n_cells: int, n_events: int, reads_per_cell: int, n_clusters: int, seed: int = 0):
    """A MuData with a splicing modality in the data contract (k only) and DS tables of every contrast."""
    from splicevi.cli.ds import annotate_ds_tables
    from splicevi.tl.ranking import events_from_junctions, rank_table

    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 5, n_events)
    event_of = np.repeat(np.arange(n_events), sizes)
    n_junctions = event_of.size
    chrom = np.array([f"chr{1 + e % 22}" for e in range(n_events)])[event_of]
    base = 10_000 + 50_000 * np.arange(n_events)
    pos = np.concatenate([np.arange(s) for s in sizes])
    start = base[event_of] + 100 * pos
    end = start + 500 + 300 * pos
    ids = pd.Index([f"{c}:{s}-{e}:+" for c, s, e in zip(chrom, start, end, strict=True)], name="junction_id")
    var = pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": end,
            "strand": "+",
            "annotated": rng.integers(0, 2, n_junctions),
            "event_id": [f"E{e}" for e in event_of],
            "gene_id": [f"G{e // 3}" for e in event_of],
            "gene_name": [f"Gene{e // 3}" for e in event_of],
        },
        index=ids,
    )
    nnz = n_cells * reads_per_cell
    rows = rng.integers(0, n_cells, nnz)
    cols = rng.integers(0, n_junctions, nnz)
    k = sp.csr_matrix(
        (rng.integers(1, 5, nnz).astype(np.float32), (rows, cols)), shape=(n_cells, n_junctions)
    )
    k.sum_duplicates()
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_cells)])
    spl = ad.AnnData(obs=obs.copy(), var=var, layers={"cell_by_junction_matrix": k})
    mdata = md.MuData({"splicing": spl})
    mdata.obs["leiden"] = pd.Categorical(rng.integers(0, n_clusters, n_cells).astype(str))
    mdata.obsm["X_umap"] = rng.normal(size=(n_cells, 2))
    tables = []
    for g in range(n_clusters):
        proba = rng.uniform(size=n_junctions)
        proba[: n_junctions // 20] = 1.0
        tables.append(
            pd.DataFrame(
                {
                    "contrast": f"leiden{g}_vs_rest",
                    "groupby": "leiden",
                    "group1": str(g),
                    "group2": "rest",
                    "junction_id": ids,
                    "event_id": var["event_id"].to_numpy(),
                    "proba_ds": proba,
                    "effect_size": rng.normal(0, 0.2, n_junctions),
                    "is_ds_fdr": proba > 0.95,
                }
            )
        )
    junctions = rank_table(pd.concat(tables, ignore_index=True), "proba_ds", "effect_size")
    events = rank_table(events_from_junctions(junctions), "proba_ds", "effect_size")
    return mdata, junctions, events, annotate_ds_tables


def main() -> None:
    """Time the output stages (tables, plots, export) and write the result."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=6_000)
    parser.add_argument(
        "--reads-per-cell", type=int, default=100, help="non-zero (cell, junction) entries per cell"
    )
    parser.add_argument("--clusters", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="2,000 cells × 500 ATSEs")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.cells, args.events = 2_000, 500
    import torch

    torch.set_num_threads(1)
    from splicevi import pl
    from splicevi.pl._counts import well_observed
    from splicevi.tl.export import events_bed, junctions_bed, leafcutter_counts, modality_anndata

    t0 = time.perf_counter()
    mdata, junctions, events, annotate = synthetic(
        args.cells, args.events, args.reads_per_cell, args.clusters
    )
    timings = {"build_inputs": time.perf_counter() - t0}

    def timed(name, fn):
        start = time.perf_counter()
        result = fn()
        timings[name] = round(time.perf_counter() - start, 3)
        return result

    junctions, events = timed("annotate", lambda: annotate(mdata, junctions, events))
    timed("well_observed", lambda: well_observed(mdata, junctions, 10, id_col="junction_id"))
    first = junctions["contrast"].iloc[0]
    timed("arcs", lambda: pl.top_event_arcs(mdata, events, n_top=2, min_cells=10).canvas.draw())
    timed("umap_psi", lambda: pl.top_junctions_umap(mdata, junctions, n_top=1, min_cells=10).canvas.draw())
    timed("volcano", lambda: pl.volcano(junctions, "ds").canvas.draw())
    timed("leafcutter", lambda: leafcutter_counts(mdata, "leiden"))
    timed("bed_junctions", lambda: junctions_bed(mdata, junctions, first))
    timed("bed_events", lambda: events_bed(mdata, events, first))
    timed("h5ad", lambda: modality_anndata(mdata, "splicing"))
    spl = mdata["splicing"]
    result = {
        "sizes": {
            "cells": spl.n_obs,
            "junctions": spl.n_vars,
            "events": args.events,
            "nonzero": int(spl.layers["cell_by_junction_matrix"].nnz),
            "contrasts": args.clusters,
            "junction_table_rows": len(junctions),
        },
        "seconds": timings,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
