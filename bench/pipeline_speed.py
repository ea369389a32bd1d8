"""Throughput and peak memory of the data pipeline: ``splicevi ingest`` → ``atse`` → ``assemble``.

Two simulated scenarios (sizes adjustable):

``junctions_1m``
    1,000,000 distinct junctions (ATSEs of 2-4 junctions) over 2,000 cells, 10 M non-zero entries,
    read from a long Parquet table.
``cells_100k``
    100,000 cells × 50,000 junctions, ~160 junctions with reads per cell (droplet-like, as in real
    10x STARsolo SJ output), 16 M non-zero entries, read from STARsolo ``Solo.out/SJ/raw``.
``cohort_8x12500`` (``--cohort``)
    The same 100,000 cells as 8 STARsolo channels of 12,500 cells (same barcodes in every channel,
    same 50,000 junctions): ``ingest`` per sample, ``--cores`` of them at a time (as Snakemake with
    ``--cores``), then ``merge``, ``atse`` and ``assemble`` of the merged file.

Inputs are generated vectorised in a separate process (timed apart). Each stage runs as its own
``splicevi`` process, so its wall time and peak resident memory (``wait4`` rusage) are its own; the
cost of merely starting a ``splicevi`` process (imports) is reported as ``startup_baseline``.
Writes JSON (stdout and --out). Run it on an otherwise idle machine.

Usage::

    python bench/pipeline_speed.py --out bench/results/pipeline_speed.json
    python bench/pipeline_speed.py --quick          # small sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv


def make_junctions(n_junctions: int, rng: np.random.Generator) -> pd.DataFrame:
    """Junction coordinates forming ATSEs of 2-4 junctions (alternative acceptors / donors)."""
    sizes = rng.choice([2, 3, 4], size=n_junctions // 2 + 1)
    sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), n_junctions)) + 1]
    n_events = len(sizes)
    event = np.repeat(np.arange(n_events), sizes)[:n_junctions]
    rank = np.arange(len(event)) - np.repeat(np.cumsum(sizes) - sizes, sizes)[:n_junctions]
    chrom_idx = event % 22
    base = 10_000 + (event // 22) * 20_000
    donor = event % 2 == 0
    start = np.where(donor, base + 137 * rank, base)
    end = np.where(donor, base + 6_000, base + 500 + 137 * rank)
    strand = np.where(event % 4 < 2, "+", "-")
    return pd.DataFrame(
        {
            "chrom": np.array([f"chr{i + 1}" for i in range(22)])[chrom_idx],
            "start": start.astype(np.int64),
            "end": end.astype(np.int64),
            "strand": strand,
            "motif": np.where(strand == "+", 1, 2),
            "annotated": 1,
        }
    )


def make_entries(n_cells: int, n_junctions: int, nnz: int, rng: np.random.Generator):
    """Unique (cell, junction, count) entries, counts 1 + Poisson(2)."""
    key = np.unique(rng.integers(0, n_cells * n_junctions, size=int(nnz * 1.02), dtype=np.int64))[:nnz]
    rng.shuffle(key)
    return key // n_junctions, key % n_junctions, 1 + rng.poisson(2.0, size=len(key))


def write_table(path: Path, junctions: pd.DataFrame, cells, cols, counts) -> None:
    """Long Parquet table; string columns dictionary-encoded from integer codes (fast, like real files)."""
    import pyarrow.parquet as pq

    def dictionary(codes, names):
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(names))

    chrom_codes, chrom_names = pd.factorize(junctions["chrom"])
    strand_codes, strand_names = pd.factorize(junctions["strand"])
    table = pa.table(
        {
            "cell": dictionary(cells, [f"c{i}" for i in range(int(cells.max()) + 1)]),
            "chrom": dictionary(chrom_codes[cols], list(chrom_names)),
            "start": junctions["start"].to_numpy()[cols],
            "end": junctions["end"].to_numpy()[cols],
            "strand": dictionary(strand_codes[cols], list(strand_names)),
            "count": counts,
        }
    )
    pq.write_table(table, path)


def write_starsolo(folder: Path, junctions: pd.DataFrame, n_cells: int, cells, cols, counts) -> None:
    """Write one STARsolo ``Solo.out/SJ/raw`` folder (features, barcodes, matrix) for the bench."""
    raw = folder / "Solo.out" / "SJ" / "raw"
    raw.mkdir(parents=True)
    totals = np.bincount(cols, weights=counts, minlength=len(junctions)).astype(np.int64)
    sj = pd.DataFrame(
        {
            "chrom": junctions["chrom"],
            "start": junctions["start"],
            "end": junctions["end"],
            "strand": np.where(junctions["strand"] == "+", 1, 2),
            "motif": junctions["motif"],
            "annotated": 1,
            "unique": totals,
            "multi": 0,
            "overhang": 50,
        }
    )
    sj.to_csv(raw / "features.tsv", sep="\t", header=False, index=False)
    pd.Series([f"c{i}" for i in range(n_cells)]).to_csv(raw / "barcodes.tsv", header=False, index=False)
    with open(raw / "matrix.mtx", "w") as fh:
        fh.write("%%MatrixMarket matrix coordinate integer general\n%\n")
        fh.write(f"{len(junctions)} {n_cells} {len(counts)}\n")
    body = pa.table({"r": cols + 1, "c": cells + 1, "v": counts})
    with open(raw / "matrix.mtx", "ab") as fh:
        pacsv.write_csv(body, fh, pacsv.WriteOptions(include_header=False, delimiter=" "))


def startup_baseline() -> dict:
    """Cost of starting a ``splicevi`` process that does nothing (imports only), for reference."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", "import splicevi.cli.main"], stderr=err)
        _, _, usage = os.wait4(proc.pid, 0)
        return {
            "seconds": round(time.perf_counter() - t0, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        }


def run_stage_rusage(argv: list[str]) -> dict:
    """Run one ``splicevi`` subcommand in a child process: wall time and its own peak RSS (``wait4``)."""
    cmd = [sys.executable, "-c", "import sys; from splicevi.cli.main import main; sys.exit(main())", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}):\n{err.read().decode()[-3000:]}")
        return {
            "seconds": round(wall, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "summary": out.read().decode(),
        }


def generate(folder: Path, n_cells: int, n_junctions: int, nnz: int, fmt: str, seed: int) -> Path:
    """Write the scenario's input files; returns the path to pass to ``splicevi ingest``."""
    rng = np.random.default_rng(seed)
    junctions = make_junctions(n_junctions, rng)
    cells, cols, counts = make_entries(n_cells, n_junctions, nnz, rng)
    if fmt == "table":
        src = folder / "junctions.parquet"
        write_table(src, junctions, cells, cols, counts)
    else:
        src = folder / "run"
        write_starsolo(src, junctions, n_cells, cells, cols, counts)
    return src


def scenario(
    name: str, n_cells: int, n_junctions: int, nnz: int, fmt: str, workdir: Path, seed: int = 0
) -> dict:
    """Write one input of the given size and format and time each data stage on it."""
    folder = workdir / name
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    # Generate in a fresh interpreter: a forked child's peak RSS (wait4) would otherwise include this
    # process's memory at fork time, inflating every stage's figure.
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        src = pool.apply(generate, (folder, n_cells, n_junctions, nnz, fmt, seed))
    gen_s = time.perf_counter() - t0
    input_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20
    stages = {
        "ingest": run_stage_rusage(
            [
                "ingest",
                "--junctions",
                str(src),
                "--junction-format",
                fmt,
                "--out-junctions",
                str(folder / "j.h5ad"),
                "--no-progress",
            ]
        ),
        "atse": run_stage_rusage(
            ["atse", "--junctions", str(folder / "j.h5ad"), "--out", str(folder / "e.tsv")]
        ),
        "assemble": run_stage_rusage(
            [
                "assemble",
                "--junctions",
                str(folder / "j.h5ad"),
                "--events",
                str(folder / "e.tsv"),
                "--out",
                str(folder / "d.h5mu"),
            ]
        ),
    }
    events = pd.read_csv(folder / "e.tsv", sep="\t", usecols=["event_id"])
    total = sum(s["seconds"] for s in stages.values())
    result = {
        "n_cells": n_cells,
        "n_junctions": n_junctions,
        "nnz": int(nnz),
        "input_format": fmt,
        "input_mb": round(input_mb, 1),
        "generate_seconds": round(gen_s, 1),
        "n_junctions_kept": int(len(events)),
        "n_events": int(events["event_id"].nunique()),
        "stages": {k: {kk: vv for kk, vv in v.items() if kk != "summary"} for k, v in stages.items()},
        "total_seconds": round(total, 2),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
        "throughput": {
            "junctions_per_s": round(n_junctions / total),
            "nonzero_entries_per_s": round(nnz / total),
            "cells_per_s": round(n_cells / total, 1),
        },
        "summaries": {k: v["summary"] for k, v in stages.items()},
    }
    return result


def _generate_cohort(
    folder: Path, n_samples: int, n_cells: int, n_junctions: int, nnz: int, seed: int
) -> list[Path]:
    rng = np.random.default_rng(seed)
    junctions = make_junctions(n_junctions, rng)
    paths = []
    for i in range(n_samples):
        cells, cols, counts = make_entries(n_cells, n_junctions, nnz, rng)
        write_starsolo(folder / f"s{i}", junctions, n_cells, cells, cols, counts)
        paths.append(folder / f"s{i}")
    return paths


def _run_parallel(argvs: list[list[str]], cores: int) -> dict:
    """Run ``splicevi`` commands ``cores`` at a time; wall time of the whole, peak RSS of each."""
    base = [sys.executable, "-c", "import sys; from splicevi.cli.main import main; sys.exit(main())"]
    t0 = time.perf_counter()
    running, peaks, queue = {}, [], list(argvs)
    while queue or running:
        while queue and len(running) < cores:
            argv = queue.pop(0)
            proc = subprocess.Popen([*base, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            running[proc.pid] = (proc, argv)
        pid, status, usage = os.wait4(-1, 0)
        if pid not in running:
            continue
        proc, argv = running.pop(pid)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{argv[:3]} failed:\n{proc.stderr.read().decode()[-3000:]}")
        peaks.append(round(usage.ru_maxrss / 1024, 1))
    return {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": max(peaks), "jobs": len(argvs)}


def cohort(workdir: Path, n_samples: int, n_cells: int, n_junctions: int, nnz: int, cores: int) -> dict:
    """Per-sample ingest (``cores`` at a time) → merge → atse → assemble, as the cohort workflow runs it."""
    folder = workdir / "cohort"
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        srcs = pool.apply(_generate_cohort, (folder, n_samples, n_cells, n_junctions, nnz // n_samples, 0))
    gen_s = time.perf_counter() - t0
    sheet = folder / "samples.tsv"
    sheet.write_text("sample\tjunctions\n" + "".join(f"s{i}\t{p}\n" for i, p in enumerate(srcs)))
    ingest = [
        [
            "ingest",
            "--junctions",
            str(p),
            "--junction-format",
            "starsolo",
            "--out-junctions",
            str(folder / f"j{i}.h5ad"),
            "--no-progress",
        ]
        for i, p in enumerate(srcs)
    ]
    stages = {"ingest": _run_parallel(ingest, cores)}
    stages["merge"] = run_stage_rusage(
        [
            "merge",
            "--sample-sheet",
            str(sheet),
            "--junctions",
            *[str(folder / f"j{i}.h5ad") for i in range(n_samples)],
            "--out-junctions",
            str(folder / "j.h5ad"),
        ]
    )
    stages["atse"] = run_stage_rusage(
        ["atse", "--junctions", str(folder / "j.h5ad"), "--out", str(folder / "e.tsv")]
    )
    stages["assemble"] = run_stage_rusage(
        [
            "assemble",
            "--junctions",
            str(folder / "j.h5ad"),
            "--events",
            str(folder / "e.tsv"),
            "--out",
            str(folder / "d.h5mu"),
        ]
    )
    merged_mb = (folder / "j.h5ad").stat().st_size / 2**20
    return {
        "n_samples": n_samples,
        "n_cells_per_sample": n_cells,
        "n_cells": n_samples * n_cells,
        "n_junctions": n_junctions,
        "nnz": int(nnz),
        "cores": cores,
        "generate_seconds": round(gen_s, 1),
        "merged_junctions_h5ad_mb": round(merged_mb, 1),
        "stages": {k: {kk: vv for kk, vv in v.items() if kk != "summary"} for k, v in stages.items()},
        "total_seconds": round(sum(s["seconds"] for s in stages.values()), 2),
        "merge_peak_rss_mb": stages["merge"]["peak_rss_mb"],
        "merge_summary": stages["merge"]["summary"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the requested scenarios and write the JSON (and Markdown) results."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the JSON here too")
    parser.add_argument("--quick", action="store_true", help="small sizes (checks the script)")
    parser.add_argument("--only", choices=("junctions_1m", "cells_100k"), help="run one scenario")
    parser.add_argument(
        "--cohort", action="store_true", help="also the 8-sample cohort path (cohort_8x12500)"
    )
    parser.add_argument(
        "--cores", type=int, default=2, help="parallel per-sample ingest jobs (--cohort; %(default)s)"
    )
    parser.add_argument("--workdir", help="folder for the generated inputs (default: a temporary folder)")
    args = parser.parse_args(argv)
    sizes = {
        "junctions_1m": dict(n_cells=2_000, n_junctions=1_000_000, nnz=10_000_000, fmt="table"),
        "cells_100k": dict(n_cells=100_000, n_junctions=50_000, nnz=16_000_000, fmt="starsolo"),
    }
    if args.quick:
        sizes = {
            "junctions_1m": dict(n_cells=200, n_junctions=20_000, nnz=100_000, fmt="table"),
            "cells_100k": dict(n_cells=2_000, n_junctions=5_000, nnz=300_000, fmt="starsolo"),
        }
    if args.only:
        sizes = {args.only: sizes[args.only]}
    import splicevi

    report = {
        "benchmark": "pipeline_speed",
        "quick": bool(args.quick),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        },
        "splicevi": splicevi.__version__,
        "command": " ".join(
            ["python", "bench/pipeline_speed.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "startup_baseline": startup_baseline(),
        "scenarios": {},
    }
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name, size in sizes.items():
            print(f"running {name}: {size}", file=sys.stderr, flush=True)
            report["scenarios"][name] = scenario(
                name, size["n_cells"], size["n_junctions"], size["nnz"], size["fmt"], Path(tmp)
            )
            if args.out:  # keep partial results if a later scenario fails or is killed
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(report, indent=1))
        if args.cohort:
            n = dict(n_samples=8, n_cells=12_500, n_junctions=50_000, nnz=16_000_000)
            if args.quick:
                n = dict(n_samples=3, n_cells=700, n_junctions=5_000, nnz=300_000)
            print(f"running cohort: {n}", file=sys.stderr, flush=True)
            report["scenarios"]["cohort_8x12500"] = cohort(Path(tmp), cores=args.cores, **n)
            report["uptime"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
