"""Training speed and peak memory of SPLICEVI over a grid of (cells, junctions, observed fraction).

Each grid point runs in a fresh subprocess so peak memory is its own. The data are synthetic and
sparse from the start (junction counts of observed ATSEs only, Poisson gene counts), so even
10^5 cells × 10^5 junctions are built without ever holding a dense cells × junctions array.

Reported per point: seconds per epoch (mean of the epochs after the first), cells per second,
observed (cell, junction) entries, peak memory during training (CPU: resident set size above the
level before training, sampled every 10 ms; GPU: ``torch.cuda.max_memory_allocated``).

Usage
-----
    python bench/train_speed.py                      # CPU grid, writes bench/results/train_speed_cpu.json
    python bench/train_speed.py --device cuda --grid gpu --out bench/results/train_speed_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

GRIDS = {
    # (cells, junctions, fraction of (cell, ATSE) pairs observed). Pairs with equal observed entries
    # and 4x the junctions show that cost follows observed entries, not cells x junctions.
    "cpu": [
        (2_000, 7_500, 0.12),
        (2_000, 30_000, 0.03),
        (20_000, 7_500, 0.12),
        (20_000, 30_000, 0.03),
    ],
    "gpu": [
        (20_000, 30_000, 0.12),
        (100_000, 22_500, 0.12),
        (100_000, 90_000, 0.03),
    ],
    "tiny": [(500, 2_000, 0.1), (500, 8_000, 0.025)],
}


def synthetic_mudata(n_cells: int, n_junctions: int, observed_fraction: float, n_genes: int = 2_000, seed: int = 0):
    """Sparse MuData in the data contract with only junction counts (k) and event ids."""
    import anndata as ad
    import mudata as md
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    sizes = rng.choice([2, 2, 3, 3, 4], size=n_junctions)
    sizes = sizes[np.cumsum(sizes) <= n_junctions]
    sizes[-1] += n_junctions - sizes.sum()
    n_events = sizes.shape[0]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Observed (cell, event) pairs: a Bernoulli draw per pair, done as a count per cell + sampling.
    per_cell = rng.binomial(n_events, observed_fraction, size=n_cells)
    rows = np.repeat(np.arange(n_cells), per_cell)
    events = rng.integers(0, n_events, size=rows.shape[0])
    pairs = np.unique(rows.astype(np.int64) * n_events + events)
    rows, events = pairs // n_events, pairs % n_events
    totals = 1 + rng.poisson(8, size=rows.shape[0])
    m = sizes[events]
    # Each observed event: all reads to one random junction, the rest Binomial-split to another.
    first = rng.integers(0, m)
    second = (first + 1 + rng.integers(0, np.maximum(m - 1, 1))) % m
    k1 = rng.binomial(totals, 0.7)
    cols = np.concatenate([starts[events] + first, starts[events] + second])
    vals = np.concatenate([k1, totals - k1]).astype(np.float32)
    rr = np.concatenate([rows, rows])
    keep = vals > 0
    k = sp.csr_matrix((vals[keep], (rr[keep], cols[keep])), shape=(n_cells, n_junctions))
    k.sum_duplicates()
    event_id = np.repeat(np.arange(n_events), sizes)
    var = pd.DataFrame({"event_id": [f"E{e}" for e in event_id]}, index=[f"j{i}" for i in range(n_junctions)])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n_cells)])
    spl = ad.AnnData(X=sp.csr_matrix((n_cells, n_junctions), dtype=np.float32), obs=obs, var=var,
                     layers={"cell_by_junction_matrix": k})
    lam = rng.gamma(0.3, 2.0, size=n_genes)
    # Sparse gene counts without a dense cells x genes draw: ~10% non-zeros.
    nnz_per_cell = int(0.1 * n_genes)
    g_rows = np.repeat(np.arange(n_cells), nnz_per_cell)
    g_cols = rng.choice(n_genes, size=g_rows.shape[0], p=lam / lam.sum())
    g = sp.csr_matrix((1 + rng.poisson(2, size=g_rows.shape[0]).astype(np.float32), (g_rows, g_cols)), shape=(n_cells, n_genes))
    g.sum_duplicates()
    rna = ad.AnnData(X=g, obs=obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    return md.MuData({"rna": rna, "splicing": spl}), int(k.nnz), n_events


def _observed_entries(mdata) -> int:
    """Observed (cell, junction) entries: every junction of each (cell, ATSE) with reads."""
    import numpy as np

    from splicevi.data import atse_totals, event_codes

    codes, _ = event_codes(mdata.mod["splicing"].var["event_id"])
    n = atse_totals(mdata.mod["splicing"].layers["cell_by_junction_matrix"], codes)
    return int(np.count_nonzero(n.data))


def run_point(n_cells, n_junctions, fraction, device, epochs, batch_size, threads=1) -> dict:
    """Train on one synthetic dataset; return timings and memory (runs inside the subprocess)."""
    import logging
    import warnings

    import psutil
    import torch

    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from lightning.pytorch.callbacks import Callback

    from splicevi import SPLICEVI

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    mdata, k_nnz, n_events = synthetic_mudata(n_cells, n_junctions, fraction)
    observed = _observed_entries(mdata)
    build_s = time.perf_counter() - t0
    SPLICEVI.setup_mudata(mdata)
    model = SPLICEVI(mdata)

    class EpochTimer(Callback):
        def __init__(self):
            self.times = []

        def on_train_epoch_start(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t)

    proc = psutil.Process()
    rss_before = proc.memory_info().rss
    peak = [rss_before]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timer = EpochTimer()
    model.train(
        max_epochs=epochs,
        batch_size=batch_size,
        train_size=1.0,
        early_stopping=False,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        callbacks=[timer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    stop.set()
    sampler.join()
    steady = timer.times[1:] or timer.times
    sec_per_epoch = sum(steady) / len(steady)
    result = {
        "cells": n_cells,
        "junctions": n_junctions,
        "events": n_events,
        "observed_fraction_of_atse_pairs": fraction,
        "stored_junction_counts": k_nnz,
        "observed_entries": observed,
        "cells_x_junctions": n_cells * n_junctions,
        "build_seconds": round(build_s, 2),
        "epochs": epochs,
        "batch_size": batch_size,
        "seconds_per_epoch": round(sec_per_epoch, 3),
        "cells_per_second": round(n_cells / sec_per_epoch, 1),
        "peak_rss_during_training_mb": round((peak[0] - rss_before) / 2**20, 1),
        "peak_rss_total_mb": round(peak[0] / 2**20, 1),
        "device": device,
        "torch_threads": threads,
    }
    if device == "cuda":
        result["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu_name"] = torch.cuda.get_device_name(0)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on 2 cores)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--point", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.point:
        n_cells, n_junctions, fraction = args.point.split(",")
        print(json.dumps(run_point(int(n_cells), int(n_junctions), float(fraction), args.device, args.epochs, args.batch_size, args.threads)))
        return 0
    out = Path(args.out or f"bench/results/train_speed_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    for n_cells, n_junctions, fraction in GRIDS[args.grid]:
        cmd = [sys.executable, __file__, "--point", f"{n_cells},{n_junctions},{fraction}", "--device", args.device,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            results.append({"cells": n_cells, "junctions": n_junctions, "observed_fraction_of_atse_pairs": fraction,
                             "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"})
        else:
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{n_cells:>7} cells {n_junctions:>6} junctions f={fraction:<5} "
              + (f"{r['observed_entries']:>11,} observed  {r['seconds_per_epoch']:>8.2f} s/epoch  "
                 f"{r['cells_per_second']:>9.0f} cells/s  peak +{r['peak_rss_during_training_mb']:.0f} MB RSS"
                 + (f"  GPU {r['gpu_peak_allocated_mb']:.0f} MB" if "gpu_peak_allocated_mb" in r else "")
                 if "error" not in r else f"ERROR {r['error']}"), flush=True)
    import torch

    payload = {
        "benchmark": "splicevi train speed",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "results": results,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
