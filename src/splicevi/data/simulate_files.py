"""Write a :class:`~splicevi.data.simulate.SimulatedData` as aligner output files, with the truth.

Layouts
-------
``starsolo``
    ``sim_SJ.out.tab`` (the run's junction table), ``Solo.out/SJ/raw/{matrix.mtx,barcodes.tsv,features.tsv}``
    (junctions × barcodes; ``features.tsv`` is a copy of ``SJ.out.tab`` as STARsolo's symlink would
    resolve) and ``Solo.out/Gene/filtered/{matrix.mtx,barcodes.tsv,features.tsv}``. As in real runs,
    the raw SJ matrix also holds background barcodes that are not cells (a few reads each, absent from
    ``Gene/filtered``), constitutive junctions outside any ATSE, and junction rows without reads.
``sj_out_tab``
    ``cells/<cell>SJ.out.tab`` and ``cells/<cell>ReadsPerGene.out.tab`` per cell, with sample sheets
    ``samples.tsv`` (cell_id, path, batch) and ``genes_samples.tsv`` (cell_id, path).

Both write ``truth_cells.tsv`` (cell type, batch), ``truth_junctions.tsv`` (junction → event, gene,
true PSI per type, DS flag), ``truth_events.tsv`` (kind, DS, types that differ, max |ΔPSI|) and
``annotation.gtf``: a GTF with one gene per simulated gene that has events (its span covers its
junctions) and one two-exon transcript per annotated junction, so ``splicevi atse --gtf`` assigns
gene ids and names.
Cell ids of the simulation are used as barcodes.

A simulation with samples (``simulate(n_samples=...)``) is written as a cohort by
:func:`write_cohort`: one folder per sample in the layout above (the same genome: every sample has
the same junction coordinates, constitutive extras and annotation), the truth of all cells at the
top, and a cohort sample sheet ``samples.tsv`` (``sample``, input paths, ``condition``) for
``splicevi merge`` and the cohort workflow.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from tqdm.auto import tqdm

from splicevi._io import atomic_path

from .simulate import SimulatedData

_STRAND_CODE = {"+": 1, "-": 2, ".": 0}

#: File name of the run's junction table in a simulated STARsolo run (STAR prefix ``sim_``).
RUN_SJ_TABLE = "sim_SJ.out.tab"


def _write_mtx(path: Path, mat: sp.spmatrix) -> None:
    """Matrix Market coordinate integer file (1-based, column-major as STARsolo writes it); gzipped for ``.gz``.

    The gzip header carries no file name or time, so the same simulation gives the same bytes.
    """
    coo = sp.coo_matrix(mat)
    order = np.lexsort((coo.row, coo.col))  # column-major like STARsolo
    coo = sp.coo_matrix(
        (np.rint(coo.data[order]).astype(np.int64), (coo.row[order], coo.col[order])), shape=coo.shape
    )
    text = io.BytesIO()  # whole, then compressed in one write: mmwrite's flushes would change the gzip bytes
    scipy.io.mmwrite(text, coo, field="integer")
    with open(path, "wb") as raw:
        if path.suffix == ".gz":
            stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
        else:
            stream = contextlib.nullcontext(raw)
        with stream as fh:
            fh.write(text.getvalue())


def _sj_table(junctions: pd.DataFrame, unique: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """STAR ``SJ.out.tab`` rows (9 columns) for a junction table and its unique read counts."""
    return pd.DataFrame(
        {
            "chrom": junctions["chrom"].to_numpy(),
            "start": junctions["start"].to_numpy(),
            "end": junctions["end"].to_numpy(),
            "strand": junctions["strand"].map(_STRAND_CODE).to_numpy(),
            "motif": junctions["motif"].to_numpy(),
            "annotated": junctions["annotated"].to_numpy(),
            "unique": unique.astype(np.int64),
            "multi": rng.binomial(unique.astype(np.int64), 0.02),
            "overhang": np.where(unique > 0, rng.integers(20, 90, size=len(unique)), 0),
        }
    )


def _extra_junctions(sim: SimulatedData, rng: np.random.Generator) -> pd.DataFrame:
    """Constitutive junctions (one per intron, no shared site) beyond the planted events."""
    n = max(sim.events.shape[0] // 4, 1)
    chroms = sorted(sim.junctions["chrom"].unique())
    chrom = rng.choice(chroms, size=n)
    last = sim.junctions.groupby("chrom")["end"].max()
    start = last.reindex(chrom).to_numpy() + 10_000 + np.arange(n) * 5_000
    strand = np.where(rng.random(n) < 0.5, "+", "-")
    return pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": start + rng.integers(300, 3000, size=n),
            "strand": strand,
            "motif": np.where(strand == "+", 1, 2),
            "annotated": 1,
        }
    )


def write_simulation(
    sim: SimulatedData,
    out: str | os.PathLike,
    fmt: str = "starsolo",
    seed: int = 0,
    progress: bool = True,
    gzip_matrices: bool = False,
) -> dict:
    """Write simulated input files and truth tables to the folder ``out`` (replaced atomically).

    Parameters
    ----------
    sim
        Output of :func:`splicevi.data.simulate.simulate`.
    out
        Output folder.
    fmt
        ``"starsolo"`` or ``"sj_out_tab"`` (see the module docstring).
    seed
        Seed of the extras (background barcodes, constitutive junctions, overhangs).
    progress
        Progress bar over per-cell files.
    gzip_matrices
        Write the STARsolo matrices as ``matrix.mtx.gz`` (as compressed STARsolo / Cell Ranger output).

    Returns
    -------
    dict
        ``n_files`` written and the main paths.
    """
    if fmt not in ("starsolo", "sj_out_tab"):
        raise ValueError(f"unknown simulation format {fmt!r}; use 'starsolo' or 'sj_out_tab'")
    rng = np.random.default_rng(seed + 7919)
    with atomic_path(out, suffix="") as tmp:
        tmp.mkdir(parents=True)
        if fmt == "starsolo":
            files = _write_starsolo(sim, tmp, rng, gzip_matrices)
        else:
            files = _write_per_cell(sim, tmp, rng, progress)
        files += _write_truth(sim, tmp)
        files.append(write_gtf(sim, tmp / "annotation.gtf"))
    return {"n_files": len(files), "out": str(out), "format": fmt}


def subset_cells(sim: SimulatedData, cells: np.ndarray) -> SimulatedData:
    """The simulation restricted to some cells (rows), with the same genes, junctions and truth."""
    cells = np.asarray(cells)
    return SimulatedData(
        gene_counts=sim.gene_counts[cells],
        junction_counts=sim.junction_counts[cells],
        obs=sim.obs.iloc[cells],
        genes=sim.genes,
        junctions=sim.junctions,
        events=sim.events,
        type_psi=sim.type_psi,
        params=sim.params,
        sample_psi=sim.sample_psi,
    )


def write_cohort(
    sim: SimulatedData,
    out: str | os.PathLike,
    fmt: str = "starsolo",
    seed: int = 0,
    progress: bool = True,
    gzip_matrices: bool = False,
) -> dict:
    """Write a simulation with samples as one set of input files per sample plus a sample sheet.

    Parameters are those of :func:`write_simulation`. Every sample is written with the same
    ``seed``, so the constitutive junctions added to the files are the same in every sample. The
    sheet's paths are ``out``-relative as given (relative to the working directory when ``out``
    is relative, as the cohort workflow reads them).

    Returns
    -------
    dict
        ``n_files``, ``out``, ``format``, ``samples`` and ``sheet`` (the sample sheet's path).
    """
    if "sample" not in sim.obs.columns:
        raise ValueError("the simulation has no samples; simulate with n_samples >= 2 to write a cohort")
    if fmt not in ("starsolo", "sj_out_tab"):
        raise ValueError(f"unknown simulation format {fmt!r}; use 'starsolo' or 'sj_out_tab'")
    final = Path(out)
    samples = [str(s) for s in sim.obs["sample"].cat.categories]
    rows = []
    n_files = 0
    with atomic_path(out, suffix="") as tmp:
        tmp.mkdir(parents=True)
        for name in samples:
            cells = np.nonzero(sim.obs["sample"].astype(str).to_numpy() == name)[0]
            info = write_simulation(
                subset_cells(sim, cells),
                tmp / name,
                fmt=fmt,
                seed=seed,
                progress=progress,
                gzip_matrices=gzip_matrices,
            )
            n_files += info["n_files"]
            base = final / name
            if fmt == "starsolo":
                gene = base / "Solo.out" / "Gene" / "filtered"
                paths = {
                    "junctions": base / "Solo.out" / "SJ" / "raw",
                    "junction_format": "starsolo",
                    "genes": gene,
                    "gene_format": "starsolo",
                    "barcodes": gene / "barcodes.tsv",
                }
            else:
                paths = {
                    "junctions": base / "samples.tsv",
                    "junction_format": "sj_out_tab",
                    "genes": base / "genes_samples.tsv",
                    "gene_format": "star_counts",
                }
            condition = sim.obs["condition"].astype(str).to_numpy()[cells[0]] if cells.size else ""
            rows.append({"sample": name, **{k: str(v) for k, v in paths.items()}, "condition": condition})
        sheet = pd.DataFrame(rows)
        sheet.to_csv(tmp / "samples.tsv", sep="\t", index=False)
        files = _write_truth(sim, tmp)
        files.append(write_gtf(sim, tmp / "annotation.gtf"))
        n_files += len(files) + 1
    return {
        "n_files": n_files,
        "out": str(out),
        "format": fmt,
        "samples": samples,
        "sheet": str(final / "samples.tsv"),
    }


def _write_truth(sim: SimulatedData, folder: Path) -> list[Path]:
    paths = [folder / "truth_cells.tsv", folder / "truth_junctions.tsv", folder / "truth_events.tsv"]
    sim.obs.to_csv(paths[0], sep="\t")
    sim.junctions.to_csv(paths[1], sep="\t")
    sim.events.to_csv(paths[2], sep="\t")
    return paths


def _write_starsolo(
    sim: SimulatedData, folder: Path, rng: np.random.Generator, gzip_matrices: bool = False
) -> list[Path]:
    n_cells = sim.obs.shape[0]
    extra = _extra_junctions(sim, rng)
    n_extra = len(extra)
    # Constitutive junction reads in cells, and background barcodes with a few reads anywhere.
    cons = sp.random(
        n_cells, n_extra, density=0.3, random_state=rng, data_rvs=lambda k: 1 + rng.poisson(3, size=k)
    )
    n_bg = max(n_cells // 10, 1)
    all_j = pd.concat(
        [sim.junctions[["chrom", "start", "end", "strand", "motif", "annotated"]], extra], ignore_index=True
    )
    bg = sp.random(
        n_bg, len(all_j), density=min(1.0, 2.0 / len(all_j)), random_state=rng, data_rvs=lambda k: np.ones(k)
    )
    cells_k = sp.hstack([sim.junction_counts, cons]).tocsr()
    k = sp.vstack([cells_k, bg]).tocsr()
    # Order junctions by position like STAR, and keep some rows without reads (zero in every barcode).
    order = np.lexsort((all_j["end"].to_numpy(), all_j["start"].to_numpy(), all_j["chrom"].to_numpy()))
    all_j = all_j.iloc[order].reset_index(drop=True)
    k = k[:, order]
    # Rows without reads only among the constitutive extras, so planted events stay complete.
    zero_cols = (order >= sim.junctions.shape[0]) & (rng.random(len(all_j)) < 0.2)
    k = (k @ sp.diags((~zero_cols).astype(np.float32))).tocsr()
    k.eliminate_zeros()
    barcodes = list(sim.obs.index) + [f"bg{i:06d}" for i in range(n_bg)]
    sj = _sj_table(all_j, np.asarray(k.sum(axis=0)).ravel(), rng)
    raw = folder / "Solo.out" / "SJ" / "raw"
    gene = folder / "Solo.out" / "Gene" / "filtered"
    raw.mkdir(parents=True)
    gene.mkdir(parents=True)
    # The run's junction table, named as STAR names it with `--outFileNamePrefix sim_`.
    sj.to_csv(folder / RUN_SJ_TABLE, sep="\t", header=False, index=False)
    sj.to_csv(raw / "features.tsv", sep="\t", header=False, index=False)
    matrix = "matrix.mtx.gz" if gzip_matrices else "matrix.mtx"
    _write_mtx(raw / matrix, k.T)
    pd.Series(barcodes).to_csv(raw / "barcodes.tsv", header=False, index=False)
    _write_mtx(gene / matrix, sim.gene_counts.T)
    pd.Series(sim.obs.index).to_csv(gene / "barcodes.tsv", header=False, index=False)
    feats = pd.DataFrame(
        {"id": sim.genes.index, "name": sim.genes["gene_name"].to_numpy(), "type": "Gene Expression"}
    )
    feats.to_csv(gene / "features.tsv", sep="\t", header=False, index=False)
    return [
        folder / RUN_SJ_TABLE,
        raw / "features.tsv",
        raw / matrix,
        raw / "barcodes.tsv",
        gene / matrix,
        gene / "barcodes.tsv",
        gene / "features.tsv",
    ]


def _write_per_cell(sim: SimulatedData, folder: Path, rng: np.random.Generator, progress: bool) -> list[Path]:
    cells_dir = folder / "cells"
    cells_dir.mkdir()
    k = sim.junction_counts.tocsr()
    g = sim.gene_counts.tocsr()
    jt = sim.junctions
    n_genes = g.shape[1]
    files: list[Path] = []
    sj_paths, gene_paths = [], []
    for i, cell in enumerate(
        tqdm(sim.obs.index, desc="writing per-cell files", unit="cell", disable=not progress)
    ):
        cols = k.indices[k.indptr[i] : k.indptr[i + 1]]
        vals = k.data[k.indptr[i] : k.indptr[i + 1]]
        sj_path = cells_dir / f"{cell}SJ.out.tab"
        _sj_table(jt.iloc[cols], vals, rng).to_csv(sj_path, sep="\t", header=False, index=False)
        counts = np.zeros(n_genes, dtype=np.int64)
        counts[g.indices[g.indptr[i] : g.indptr[i + 1]]] = np.rint(g.data[g.indptr[i] : g.indptr[i + 1]])
        gene_path = cells_dir / f"{cell}ReadsPerGene.out.tab"
        head = pd.DataFrame(
            {
                "id": ["N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous"],
                "u": rng.integers(100, 2000, size=4),
                "f": 0,
                "r": 0,
            }
        )
        body = pd.DataFrame({"id": sim.genes.index, "u": counts, "f": counts // 2, "r": counts - counts // 2})
        pd.concat([head, body]).to_csv(gene_path, sep="\t", header=False, index=False)
        sj_paths.append(f"cells/{sj_path.name}")
        gene_paths.append(f"cells/{gene_path.name}")
        files += [sj_path, gene_path]
    sheet = pd.DataFrame(
        {"cell_id": sim.obs.index, "path": sj_paths, "batch": sim.obs["batch"].astype(str).to_numpy()}
    )
    sheet.to_csv(folder / "samples.tsv", sep="\t", index=False)
    pd.DataFrame({"cell_id": sim.obs.index, "path": gene_paths}).to_csv(
        folder / "genes_samples.tsv", sep="\t", index=False
    )
    return files + [folder / "samples.tsv", folder / "genes_samples.tsv"]


def write_gtf(sim: SimulatedData, path: Path) -> Path:
    """GTF of the simulated genes: gene spans over their junctions, a transcript per annotated junction."""
    j = sim.junctions.reset_index()
    attrs = 'gene_id "' + j["gene_id"] + '"; gene_name "' + j["gene_name"] + '";'
    genes = (
        j.groupby("gene_id", sort=False)
        .agg(
            chrom=("chrom", "first"),
            start=("start", "min"),
            end=("end", "max"),
            strand=("strand", "first"),
            gene_name=("gene_name", "first"),
        )
        .reset_index()
    )
    gene_lines = pd.DataFrame(
        {
            "chrom": genes["chrom"],
            "src": "splicevi",
            "feature": "gene",
            "start": genes["start"] - 200,
            "end": genes["end"] + 200,
            "score": ".",
            "strand": genes["strand"],
            "frame": ".",
            "attr": 'gene_id "' + genes["gene_id"] + '"; gene_name "' + genes["gene_name"] + '";',
        }
    )
    ann = j[j["annotated"] == 1]
    tx_attr = attrs[ann.index] + ' transcript_id "T' + ann.index.astype(str) + '";'
    exons = []
    for ex_start, ex_end in ((ann["start"] - 100, ann["start"] - 1), (ann["end"] + 1, ann["end"] + 100)):
        exons.append(
            pd.DataFrame(
                {
                    "chrom": ann["chrom"],
                    "src": "splicevi",
                    "feature": "exon",
                    "start": ex_start,
                    "end": ex_end,
                    "score": ".",
                    "strand": ann["strand"],
                    "frame": ".",
                    "attr": tx_attr,
                }
            )
        )
    lines = pd.concat([gene_lines, *exons], ignore_index=True).sort_values(["chrom", "start"], kind="stable")
    with open(path, "w") as fh:
        fh.write("#!simulated annotation of splicevi.data.simulate_files\n")
        lines.to_csv(fh, sep="\t", header=False, index=False, quoting=3)
    return path
