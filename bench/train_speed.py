"""Training speed and peak memory of SPLICEVI next to scvi-tools' SCVI on the expression part.

Each grid point is written once as the lean ``.h5mu`` that ``splicevi assemble`` writes (junction
counts k + ``event_id``, raw gene counts), then read back in fresh subprocesses, as ``splicevi
train`` does: one trains SPLICEVI on the whole file, one trains SCVI on its expression modality
alone, with the same epochs, batch size and torch threads. Peak memory is the process's peak
resident set size (``ru_maxrss``) from reading the file on, so it covers everything training needs.
The data are synthetic and sparse from the start (junction counts of observed ATSEs only, Poisson
gene counts), so even 10^5 cells × 10^5 junctions are built without a dense cells × junctions array.

Reported per point: seconds per epoch (mean of the epochs after the first), cells per second,
observed (cell, junction) entries, peak RSS, SCVI's seconds per epoch and the ratio; with
``--inference``, time and peak RSS of the latent representation, of decoded PSI for all cells (in
blocks of cells) and of one differential-splicing comparison. The load average is recorded, since
on a shared machine it moves every timing; compare numbers only within one run.

Usage
-----
    python bench/train_speed.py                        # CPU grid of issue 10 -> bench/results/train_speed_cpu.json
    python bench/train_speed.py --grid cpu-small       # the small CPU grid
    python bench/train_speed.py --device cuda --grid gpu --out bench/results/train_speed_gpu.json
    # issue 21: the lean and the reference API's set-up next to SCVI, ratios to .json and .md
    python bench/train_speed.py --grid issue21 --setups lean,reference --batch-size 256 \
        --out bench/results/train_speed_issue21.json
    # ... and next to SCVI shaped as SPLICEVI's expression branch (the splicing branch's own cost)
    python bench/train_speed.py --grid issue21 --setups lean,reference --batch-size 256 --matched-scvi
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRIDS = {
    # (cells, junctions, fraction of (cell, ATSE) pairs observed). 7,500 junctions at 12% and 30,000
    # at 3% hold the same observed entries with 4x the junctions: cost must follow observed entries.
    "cpu": [
        (20_000, 30_000, 0.15),
        (20_000, 30_000, 0.03),
        (20_000, 7_500, 0.12),
    ],
    "cpu-headline": [(20_000, 30_000, 0.15)],
    "cpu-small": [
        (2_000, 7_500, 0.12),
        (2_000, 30_000, 0.03),
    ],
    "gpu": [
        (20_000, 30_000, 0.15),
        (100_000, 22_500, 0.12),
        (100_000, 90_000, 0.03),
    ],
    "tiny": [(500, 2_000, 0.1), (500, 8_000, 0.025)],
    # Issue 21: both set-ups next to SCVI; (cells, junctions, fraction, genes).
    "issue21": [(6_000, 12_000, 0.15, 2_000), (20_000, 30_000, 0.15, 5_000)],
    "issue21-small": [(6_000, 12_000, 0.15, 2_000)],
    # bench/gpu_run.sh: 3% of (cell, ATSE) pairs observed.
    "gpu-issue21-100k": [(100_000, 90_000, 0.03, 5_000)],
    "gpu-issue21-1m": [(1_000_000, 100_000, 0.03, 5_000)],
}
#: How SPLICEVI is set up: the lean file (junction counts only) or as the reference API shows
#: (``junc_ratio``, ``cell_by_cluster_matrix``, ``cell_by_junction_matrix``, ``psi_mask`` registered).
SETUPS = ("lean", "reference")
N_GENES = 5_000


def synthetic_mudata(
    n_cells: int, n_junctions: int, observed_fraction: float, n_genes: int = N_GENES, seed: int = 0
):
    """Sparse MuData in the lean layout of ``splicevi assemble``: junction counts k and event ids only."""
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
    spl = ad.AnnData(X=None, obs=obs, var=var, layers={"cell_by_junction_matrix": k})
    lam = rng.gamma(0.3, 2.0, size=n_genes)
    # Sparse gene counts without a dense cells x genes draw: ~10% non-zeros.
    nnz_per_cell = int(0.1 * n_genes)
    g_rows = np.repeat(np.arange(n_cells), nnz_per_cell)
    g_cols = rng.choice(n_genes, size=g_rows.shape[0], p=lam / lam.sum())
    g = sp.csr_matrix(
        (1 + rng.poisson(2, size=g_rows.shape[0]).astype(np.float32), (g_rows, g_cols)),
        shape=(n_cells, n_genes),
    )
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


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def make_file(n_cells, n_junctions, fraction, path, n_genes=N_GENES) -> dict:
    """Write one grid point as the workflow's lean ``.h5mu`` (runs inside a subprocess)."""
    t0 = time.perf_counter()
    mdata, k_nnz, n_events = synthetic_mudata(n_cells, n_junctions, fraction, n_genes=n_genes)
    observed = _observed_entries(mdata)
    mdata.write(path)
    return {
        "events": n_events,
        "stored_junction_counts": k_nnz,
        "observed_entries": observed,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "file_mb": round(os.path.getsize(path) / 2**20, 1),
    }


def _epoch_timer(device):
    import torch
    from lightning.pytorch.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            self.times = []
            # CPU seconds of this process: on a shared machine the wall time also counts the time
            # other processes held the cores; with one torch thread CPU time is the work done.
            self.cpu_times = []

        def on_train_epoch_start(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self._t = time.perf_counter()
            self._c = time.process_time()

        def on_train_epoch_end(self, trainer, pl_module):
            if device == "cuda":
                torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self._t)
            self.cpu_times.append(time.process_time() - self._c)

    return EpochTimer()


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 2)


def reference_setup(mdata) -> None:
    """Add the reference layers (derived from the counts, in memory) and register all four."""
    from splicevi import SPLICEVI
    from splicevi.data.layers import event_codes, splicing_layers

    spl = mdata.mod["splicing"]
    codes, _ = event_codes(spl.var["event_id"])
    for name, layer in splicing_layers(spl.layers["cell_by_junction_matrix"], codes).items():
        spl.layers[name] = layer
    SPLICEVI.setup_mudata(
        mdata,
        rna_layer=None,
        junc_ratio_layer="junc_ratio",
        atse_counts_layer="cell_by_cluster_matrix",
        junc_counts_layer="cell_by_junction_matrix",
        psi_mask_layer="psi_mask",
        modalities={
            "rna_layer": "rna",
            "junc_ratio_layer": "splicing",
            "atse_counts_layer": "splicing",
            "junc_counts_layer": "splicing",
            "psi_mask_layer": "splicing",
        },
    )


def run_point(path, model_name, device, epochs, batch_size, threads=1, inference=False) -> dict:
    """Read the file, train one model on it; timings and memory (runs inside a subprocess).

    ``model_name``: ``scvi``, ``scvi-matched`` (SCVI shaped as SPLICEVI's expression branch: its
    default width, two hidden layers and 30 latent dimensions, so that the ratio to it is the cost
    of the splicing branch over the expression branch), ``splicevi`` (lean set-up) or
    ``splicevi-reference``.
    """
    import logging
    import warnings

    import torch

    warnings.simplefilter("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    from splicevi.cli._common import read_mudata, setup_model_data

    torch.set_num_threads(threads)
    rss_start = _peak_rss_mb()
    mdata, read_s = _timed(lambda: read_mudata(path))
    result = {"model": model_name, "read_seconds": read_s, "peak_rss_after_read_mb": _peak_rss_mb()}
    if model_name in ("scvi", "scvi-matched"):
        import scvi

        rna = mdata.mod["rna"]
        shape = {}
        if model_name == "scvi-matched":
            from splicevi.module._splicevae import default_hidden_width

            width = default_hidden_width(rna.n_vars, mdata.mod["splicing"].n_vars)
            shape = {"n_hidden": width, "n_layers": 2, "n_latent": 30}
            result["architecture"] = shape
        del mdata
        scvi.model.SCVI.setup_anndata(rna)
        model = scvi.model.SCVI(rna, **shape)
        n_cells = rna.n_obs
    else:
        from splicevi import SPLICEVI

        if model_name == "splicevi-reference":
            _, result["reference_layers_seconds"] = _timed(lambda: reference_setup(mdata))
        else:
            setup_model_data(mdata)
        model, result["setup_seconds"] = _timed(lambda: SPLICEVI(mdata))
        loader_kwargs = getattr(model, "_loader_kwargs", None)  # absent before issue 21
        result["minibatch_keys"] = (
            loader_kwargs(model.adata_manager)["data_and_attributes"]
            if loader_kwargs
            else sorted(model.adata_manager.data_registry)
        )
        n_cells = mdata.n_obs
    result["peak_rss_after_setup_mb"] = _peak_rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timer = _epoch_timer(device)
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
    steady = timer.times[1:] or timer.times
    sec_per_epoch = sum(steady) / len(steady)
    cpu_steady = timer.cpu_times[1:] or timer.cpu_times
    result["cpu_seconds_per_epoch"] = round(sum(cpu_steady) / len(cpu_steady), 2)
    result.update(
        {
            "epoch_seconds": [round(t, 2) for t in timer.times],
            "seconds_per_epoch": round(sec_per_epoch, 2),
            "cells_per_second": round(n_cells / sec_per_epoch, 1),
            "peak_rss_training_mb": _peak_rss_mb(),
            "rss_before_read_mb": rss_start,
            "load_average_after_training": _load(),
        }
    )
    if device == "cuda":
        result["gpu_peak_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["gpu_name"] = torch.cuda.get_device_name(0)
    else:
        result["cpu_name"] = _cpu_name()
    if inference and model_name != "scvi":
        result["inference"] = _inference(model, mdata, batch_size)
    return result


def _inference(model, mdata, batch_size, block=2_000) -> dict:
    """Time and peak RSS of the latent, decoded PSI (blocks of cells) and one DS comparison."""
    import numpy as np

    out = {}
    latent, out["latent_seconds"] = _timed(lambda: model.get_latent_representation(batch_size=batch_size))
    out["peak_rss_after_latent_mb"] = _peak_rss_mb()

    def decode_all():
        # All cells x all junctions, a block of cells at a time, reduced per block (mean PSI per
        # junction): what a caller who cannot hold cells x junctions dense does.
        total = np.zeros(model.module.n_input_junctions)
        for start in range(0, mdata.n_obs, block):
            idx = np.arange(start, min(start + block, mdata.n_obs))
            total += model.get_normalized_splicing(indices=idx, batch_size=batch_size, return_numpy=True).sum(
                axis=0
            )
        return total

    _, out["decoded_psi_all_cells_seconds"] = _timed(decode_all)
    out["decoded_psi_block_cells"] = block
    out["peak_rss_after_decoded_psi_mb"] = _peak_rss_mb()
    half = mdata.n_obs // 2
    _, out["ds_one_comparison_seconds"] = _timed(
        lambda: model.differential_splicing(
            idx1=np.arange(half), idx2=np.arange(half, mdata.n_obs), batch_size=batch_size, silent=True
        )
    )
    out["peak_rss_after_ds_mb"] = _peak_rss_mb()
    out["latent_shape"] = list(latent.shape)
    return out


def _cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _subprocess(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ.copy()
    )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    """Time training epochs of SPLICEVI and SCVI on the grid points and write the result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="SPLICEVI's and SCVI's default, 128")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on 2 cores)")
    parser.add_argument("--no-scvi", action="store_true", help="skip the SCVI reference")
    parser.add_argument(
        "--matched-scvi",
        action="store_true",
        help="also train SCVI shaped as SPLICEVI's expression branch (width, layers, latent): the "
        "ratio to it is the splicing branch's cost over the expression branch's",
    )
    parser.add_argument("--setups", default="lean", help="comma-separated SPLICEVI set-ups: lean, reference")
    parser.add_argument(
        "--inference",
        action="store_true",
        help="also time latent, decoded PSI and DS (on the grid's first point)",
    )
    parser.add_argument("--out", default=None)
    parser.add_argument("--make-file", nargs=2, metavar=("POINT", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--train", nargs=2, metavar=("MODEL", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_file:
        n_cells, n_junctions, fraction, n_genes = args.make_file[0].split(",")
        print(
            json.dumps(
                make_file(int(n_cells), int(n_junctions), float(fraction), args.make_file[1], int(n_genes))
            )
        )
        return 0
    setups = [x.strip() for x in args.setups.split(",") if x.strip()]
    if not setups or set(setups) - set(SETUPS):
        parser.error(f"--setups must name some of {SETUPS}, got {args.setups!r}")
    if args.train:
        print(
            json.dumps(
                run_point(
                    args.train[1],
                    args.train[0],
                    args.device,
                    args.epochs,
                    args.batch_size,
                    args.threads,
                    args.inference,
                )
            )
        )
        return 0
    out = Path(args.out or f"bench/results/train_speed_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    common = [
        "--device",
        args.device,
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
    ]
    results = []
    with tempfile.TemporaryDirectory(prefix="splicevi-bench-") as tmp:
        for i, spec in enumerate(GRIDS[args.grid]):
            n_cells, n_junctions, fraction = spec[:3]
            n_genes = spec[3] if len(spec) > 3 else N_GENES
            path = str(Path(tmp) / f"{n_cells}x{n_junctions}_{fraction}.h5mu")
            point = {
                "cells": n_cells,
                "junctions": n_junctions,
                "genes": n_genes,
                "observed_fraction_of_atse_pairs": fraction,
                "cells_x_junctions": n_cells * n_junctions,
                "load_average_before": _load(),
            }
            point.update(_subprocess(["--make-file", f"{n_cells},{n_junctions},{fraction},{n_genes}", path]))
            if "error" not in point:
                for setup in setups:
                    key = "splicevi" if setup == "lean" else f"splicevi_{setup}"
                    name = "splicevi" if setup == "lean" else f"splicevi-{setup}"
                    point[key] = _subprocess(
                        ["--train", name, path, *common]
                        + (["--inference"] if args.inference and i == 0 else [])
                    )
                references = [] if args.no_scvi else [("scvi_expression_only", "scvi", "scvi")]
                if args.matched_scvi:
                    references.append(("scvi_matched", "scvi-matched", "matched_scvi"))
                for ref_key, ref_model, ref_name in references:
                    point[ref_key] = _subprocess(["--train", ref_model, path, *common])
                    r = point[ref_key]
                    for setup in setups:
                        s = point["splicevi" if setup == "lean" else f"splicevi_{setup}"]
                        if "error" not in s and "error" not in r:
                            ratio_key = _ratio_key(setup, ref_name)
                            point[ratio_key] = round(s["seconds_per_epoch"] / r["seconds_per_epoch"], 2)
                            point[ratio_key.replace("_seconds_", "_cpu_seconds_")] = round(
                                s["cpu_seconds_per_epoch"] / r["cpu_seconds_per_epoch"], 2
                            )
                Path(path).unlink(missing_ok=True)
            results.append(point)
            _print_point(point)
            _write(out, args, results)
    _pairs(results)
    _write(out, args, results)
    _write_markdown(out.with_suffix(".md"), args, results)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


def _ratio_key(setup: str, reference: str = "scvi") -> str:
    """Result key of a set-up's seconds-per-epoch ratio to a reference (``scvi`` or ``matched_scvi``)."""
    return ("splicevi" if setup == "lean" else f"splicevi_{setup}") + f"_over_{reference}_seconds_per_epoch"


def _print_point(p: dict) -> None:
    head = f"{p['cells']:>7} cells {p['junctions']:>6} junctions f={p['observed_fraction_of_atse_pairs']:<5}"
    if "error" in p:
        print(f"{head} ERROR {p['error']}", flush=True)
        return
    s = p.get("splicevi", {})
    line = f"{head} {p['observed_entries']:>11,} observed  file {p['file_mb']:.0f} MB  "
    if "error" in s:
        line += f"SPLICEVI ERROR {s['error']}"
    else:
        line += (
            f"SPLICEVI {s['seconds_per_epoch']:.1f} s/epoch {s['cells_per_second']:.0f} cells/s "
            f"peak RSS {s['peak_rss_training_mb']:.0f} MB"
        )
        if "gpu_peak_allocated_mb" in s:
            line += f" GPU {s['gpu_peak_allocated_mb']:.0f} MB"
    r = p.get("scvi_expression_only")
    if r is not None:
        line += (
            f" | SCVI {r['seconds_per_epoch']:.1f} s/epoch"
            if "error" not in r
            else f" | SCVI ERROR {r['error']}"
        )
    if "splicevi_over_scvi_seconds_per_epoch" in p:
        line += f" | ratio {p['splicevi_over_scvi_seconds_per_epoch']:.2f}"
    if "splicevi_over_matched_scvi_seconds_per_epoch" in p:
        line += f" (to matched SCVI {p['splicevi_over_matched_scvi_seconds_per_epoch']:.2f})"
    ref = p.get("splicevi_reference")
    if ref is not None:
        line += (
            f" | reference set-up {ref['seconds_per_epoch']:.1f} s/epoch"
            if "error" not in ref
            else f" | reference set-up ERROR {ref['error']}"
        )
        if "splicevi_reference_over_scvi_seconds_per_epoch" in p:
            line += f" ratio {p['splicevi_reference_over_scvi_seconds_per_epoch']:.2f}"
    line += f" | load {p['load_average_before']}"
    print(line, flush=True)
    if "inference" in s:
        print("    inference:", json.dumps(s["inference"]), flush=True)


def _write_markdown(path: Path, args, results: list[dict]) -> None:
    """The ratios as a table (one row per grid point and set-up), machine named."""
    import torch

    lines = [
        "# SPLICEVI vs SCVI seconds per epoch",
        "",
        f"`{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs ({_cpu_name()}), torch {torch.__version__}, "
        f"device {args.device}, {args.threads} torch thread(s), batch {args.batch_size}, {args.epochs} epochs "
        "(the first is not timed when there are more).",
        "",
        "| cells × genes × junctions (observed fraction) | observed entries | set-up | SPLICEVI s/epoch | "
        "SCVI s/epoch | ratio | CPU s/epoch SPLICEVI / SCVI | CPU ratio | matched SCVI s/epoch (CPU) | "
        "ratio to matched (CPU) | peak RSS MiB | GPU | minibatch keys | load before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results:
        head = (
            f"{p['cells']:,} × {p['genes']:,} × {p['junctions']:,} ({p['observed_fraction_of_atse_pairs']})"
        )
        r = p.get("scvi_expression_only", {})
        for setup in SETUPS:
            key = "splicevi" if setup == "lean" else f"splicevi_{setup}"
            s = p.get(key)
            if s is None:
                continue
            if "error" in s:
                lines.append(f"| {head} | | {setup} | error: {s['error']} | | | | | | | | | | |")
                continue
            ratio_key = _ratio_key(setup)
            matched_key = _ratio_key(setup, "matched_scvi")
            m = p.get("scvi_matched", {})
            matched = (
                f"{m['seconds_per_epoch']} ({m['cpu_seconds_per_epoch']})" if "seconds_per_epoch" in m else ""
            )
            matched_ratio = (
                f"{p[matched_key]} ({p[matched_key.replace('_seconds_', '_cpu_seconds_')]})"
                if matched_key in p
                else ""
            )
            gpu = s.get("gpu_name", "")
            if "gpu_peak_allocated_mb" in s:
                gpu += f" {s['gpu_peak_allocated_mb']:.0f} MiB"
            lines.append(
                f"| {head} | {p.get('observed_entries', 0):,} | {setup} | {s['seconds_per_epoch']} | "
                f"{r.get('seconds_per_epoch', '')} | {p.get(ratio_key, '')} | "
                f"{s.get('cpu_seconds_per_epoch', '')} / {r.get('cpu_seconds_per_epoch', '')} | "
                f"{p.get(ratio_key.replace('_seconds_', '_cpu_seconds_'), '')} | {matched} | {matched_ratio} | "
                f"{s['peak_rss_training_mb']:.0f} | "
                f"{gpu} | {', '.join(s.get('minibatch_keys', []))} | {p.get('load_average_before')} |"
            )
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)


def _pairs(results: list[dict]) -> None:
    """Points with the same cells and (about) the same observed entries: cost ratio at more junctions."""
    ok = [r for r in results if "error" not in r and "error" not in r.get("splicevi", {"error": 1})]
    for a in ok:
        for b in ok:
            same = abs(a["observed_entries"] - b["observed_entries"]) / a["observed_entries"] < 0.1
            if a["cells"] == b["cells"] and b["junctions"] == 4 * a["junctions"] and same:
                b["vs_quarter_junctions_same_observed"] = {
                    "junctions": [a["junctions"], b["junctions"]],
                    "time_ratio": round(
                        b["splicevi"]["seconds_per_epoch"] / a["splicevi"]["seconds_per_epoch"], 2
                    ),
                    "peak_rss_ratio": round(
                        b["splicevi"]["peak_rss_training_mb"] / a["splicevi"]["peak_rss_training_mb"], 2
                    ),
                }
                print(
                    f"4x junctions at the same observed entries ({a['junctions']} -> {b['junctions']}): "
                    f"{b['vs_quarter_junctions_same_observed']}",
                    flush=True,
                )


def _write(out: Path, args, results) -> None:
    import torch

    payload = {
        "benchmark": "splicevi train speed (SPLICEVI vs SCVI on the expression part, same run)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "cpu_name": _cpu_name(),
            "torch": torch.__version__,
            "gpu_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "results": results,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(out)


if __name__ == "__main__":
    sys.exit(main())
