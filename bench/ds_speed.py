"""Time and peak memory of one differential splicing contrast at 20,000 cells × 30,000 junctions.

The data are the project's simulator at droplet-like coverage (3 % of (cell, ATSE) pairs) for
1,000 cells, stacked 20 times (timing does not depend on the values); the model is untrained
(marked trained: the cost of ``differential_splicing`` does not depend on the weights). One
contrast with default settings (type0 vs the rest, per junction; then per ATSE), on one torch
thread. Memory: the resident set sampled every 50 ms during each call, above its level just
before the call (what the test adds on top of data and model), beside the size of one dense
cells × junctions float32 matrix.

Run: ``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python bench/ds_speed.py [--cells 20000]`` (one
core's worth: compare ``cpu_seconds_*`` with the 60 s budget when the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from splicevi import SPLICEVI
from splicevi.data import simulate
from splicevi.data.simulate import SimulatedData


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Current resident memory of this process (MiB)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_sampled(fn):
    """Run ``fn()`` while a thread samples the resident memory.

    Returns the result, wall seconds, CPU seconds of the process (what an unloaded core would take
    with one thread; the shared machine's wall time depends on the other jobs) and peak MB above
    the resident set at the start.
    """
    start, peak, done = current_rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0, c0 = time.time(), time.process_time()
    out = fn()
    seconds, cpu = time.time() - t0, time.process_time() - c0
    done.set()
    thread.join()
    return out, seconds, cpu, max(peak[0], current_rss_mb()) - start


def stacked_simulation(n_cells: int, n_events: int, n_genes: int, seed: int) -> SimulatedData:
    """A 1,000-cell simulation repeated to ``n_cells`` cells (distinct cell ids)."""
    base = simulate(
        n_cells=1000,
        n_genes=n_genes,
        n_events=n_events,
        n_types=6,
        n_batches=2,
        observed_fraction=0.03,
        seed=seed,
    )
    reps = int(np.ceil(n_cells / 1000))
    obs = base.obs.iloc[np.tile(np.arange(1000), reps)[:n_cells]].copy()
    obs.index = [f"cell{i:07d}" for i in range(n_cells)]
    obs.index.name = "cell_id"
    return SimulatedData(
        gene_counts=sp.vstack([base.gene_counts] * reps, format="csr")[:n_cells],
        junction_counts=sp.vstack([base.junction_counts] * reps, format="csr")[:n_cells],
        obs=obs,
        genes=base.genes,
        junctions=base.junctions,
        events=base.events,
        type_psi=base.type_psi,
        params=base.params,
    )


def main() -> None:
    """Time one DS comparison (and its peak memory) and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=10_700, help="≈2.8 junctions per ATSE")
    parser.add_argument("--genes", type=int, default=2_000)
    parser.add_argument("--out", default="bench/results/ds_speed.json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    t0 = time.time()
    sim = stacked_simulation(args.cells, args.events, args.genes, seed=0)
    mdata = sim.to_mudata()
    SPLICEVI.setup_mudata(mdata, batch_key="batch")
    model = SPLICEVI(mdata, n_latent=10)
    model.is_trained_ = True
    spl = mdata["splicing"]
    setup_s = time.time() - t0
    rss_before = current_rss_mb()
    junctions, junction_s, junction_cpu, junction_mb = run_sampled(
        lambda: model.differential_splicing(groupby="cell_type", group1="type0")
    )
    events, event_s, event_cpu, event_mb = run_sampled(
        lambda: model.differential_splicing(groupby="cell_type", group1="type0", level="event")
    )
    result = {
        "command": "python " + " ".join(sys.argv),
        "machine": {
            "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            # The machine is shared: the load average says how much of the CPU the run had.
            "load_average_1_5_15_min_at_end": [round(x, 2) for x in os.getloadavg()],
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "n_cells": int(spl.n_obs),
        "n_junctions": int(spl.n_vars),
        "n_atses": int(sim.events.shape[0]),
        "observed_entries": int(spl.layers["psi_mask"].nnz),
        "observed_entry_fraction": round(spl.layers["psi_mask"].nnz / (spl.n_obs * spl.n_vars), 4),
        "contrast": "type0 vs rest (default settings)",
        "seconds_junction_table": round(junction_s, 1),
        "seconds_event_table": round(event_s, 1),
        "cpu_seconds_junction_table": round(junction_cpu, 1),
        "cpu_seconds_event_table": round(event_cpu, 1),
        "rss_mb_before_ds": round(rss_before, 0),
        "peak_rss_mb_added_by_junction_ds": round(junction_mb, 0),
        "peak_rss_mb_added_by_event_ds": round(event_mb, 0),
        "peak_rss_mb_process": round(peak_rss_mb(), 0),
        "dense_cells_x_junctions_all_cells_mb": round(spl.n_obs * spl.n_vars * 4 / 2**20, 0),
        "n_rows": [int(len(junctions)), int(len(events))],
        "setup_seconds": round(setup_s, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
