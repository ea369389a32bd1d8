"""Readers of gene counts into a cells × genes sparse AnnData (``var`` index gene id, ``gene_name``).

Supported inputs
----------------
``starsolo`` / ``mtx``
    A folder with ``matrix.mtx``, ``barcodes.tsv`` and ``features.tsv`` (or Cell Ranger v2
    ``genes.tsv``), genes × cells, plain or ``.gz``: STARsolo ``Solo.out/Gene/filtered`` (the run
    folder, ``Solo.out`` or ``Solo.out/Gene`` also work; ``filtered`` is preferred over ``raw``), or
    Cell Ranger ``filtered_feature_bc_matrix``. With a raw matrix, pass a barcode list to keep cells.
``10x_h5``
    Cell Ranger ``filtered_feature_bc_matrix.h5`` (v3 layout; only "Gene Expression" features).
``h5ad``
    An AnnData whose ``X`` (or ``layers["counts"]``, or ``raw.X``) holds integer counts.
``star_counts``
    One STAR ``ReadsPerGene.out.tab`` per cell listed in a cell sheet (``cell_id``, ``path``);
    the unstranded column is used unless ``strandedness`` says otherwise.

The formats are entries of :data:`splicevi.data.formats.GENE_READERS` (registered at the end of this
module), from which detection, dispatch and the CLI's choices are read.

Why not scanpy's readers: ``sc.read_10x_h5`` and ``sc.read_10x_mtx`` convert the counts to float32
before a caller can see them, so a count above 2^24 (not exact in float32) or a non-integer count
would pass unnoticed, and their errors name neither the file's line nor the fix; STARsolo's
``raw``/``filtered`` and run-folder layouts are not searched either. These readers check the raw
values first (:func:`splicevi.data._tables.check_count_values`) and then build the same AnnData
(cells × genes, ``var`` index gene id with ``gene_name``).
"""

from __future__ import annotations

import os
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from splicevi._io import require_file

from . import formats
from ._mtx import read_mtx
from ._tables import (
    MAX_COUNT,
    InputError,
    check_count_values,
    count_totals,
    read_delimited,
    read_typed,
)
from .readers_junctions import read_barcodes, read_cell_sheet

_STRANDED_COLUMN = {"unstranded": 1, "forward": 2, "reverse": 3}


def _find_mtx_dir(p: Path) -> Path:
    for cand in (
        p,
        p / "filtered",
        p / "Gene" / "filtered",
        p / "Solo.out" / "Gene" / "filtered",
        p / "raw",
        p / "Gene" / "raw",
        p / "Solo.out" / "Gene" / "raw",
        p / "filtered_feature_bc_matrix",
    ):
        if (cand / "matrix.mtx").exists() or (cand / "matrix.mtx.gz").exists():
            return cand
    raise InputError(
        p,
        "no matrix.mtx under this path",
        "point --genes at Solo.out/Gene/filtered (or the run folder / a Cell Ranger matrix folder)",
    )


def read_mtx_dir(path: str | os.PathLike) -> ad.AnnData:
    """Read a STARsolo / Cell Ranger matrix folder (genes × cells) into cells × genes."""
    folder = _find_mtx_dir(Path(require_file(path, "gene count folder")))

    def pick(*names):
        for n in names:
            if (folder / n).exists():
                return folder / n
        raise InputError(folder, f"{names[0]} not found", "copy the complete matrix folder")

    mat = read_mtx(pick("matrix.mtx", "matrix.mtx.gz"), what="gene matrix.mtx")
    barcodes = read_barcodes(pick("barcodes.tsv", "barcodes.tsv.gz"))
    feat_path = pick("features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz")
    feat = read_delimited(
        feat_path,
        (1, 2, 3, 4),
        what="gene features.tsv",
        fix="features.tsv needs gene id and name columns (STARsolo / Cell Ranger layout)",
    )
    if mat.shape != (len(feat), len(barcodes)):
        raise InputError(
            folder / "matrix.mtx",
            f"matrix is {mat.shape[0]} × {mat.shape[1]} but there are {len(feat)} features and "
            f"{len(barcodes)} barcodes",
            "use matrix, features and barcodes of the same run",
        )
    names = feat[1] if feat.shape[1] > 1 else feat[0]
    keep = np.ones(len(feat), dtype=bool)
    if feat.shape[1] > 2:  # Cell Ranger v3: keep gene expression features only
        keep = (feat[2] == "Gene Expression").to_numpy() | ~feat[2].isin(
            ["Antibody Capture", "CRISPR Guide Capture", "Custom", "Peaks"]
        ).to_numpy()
    x = mat.T.tocsr()[:, keep]
    var = pd.DataFrame(
        {"gene_name": names.to_numpy()[keep]}, index=pd.Index(feat[0].to_numpy()[keep], name="gene_id")
    )
    obs = pd.DataFrame(index=pd.Index(barcodes, name="cell_id"))
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.var_names_make_unique()
    adata.uns["splicevi_ingest"] = {"gene_format": "mtx", "genes": str(folder)}
    return adata


def read_10x_h5(path: str | os.PathLike) -> ad.AnnData:
    """Read a Cell Ranger v3 ``.h5`` matrix (gene expression features) into cells × genes."""
    path = require_file(path, "10x .h5 matrix")
    fix = "pass Cell Ranger's filtered_feature_bc_matrix.h5 (v3 layout)"
    try:
        with h5py.File(path, "r") as f:
            if "matrix" not in f:
                raise InputError(path, "no /matrix group (Cell Ranger v2 .h5 is not supported)", fix)
            g = f["matrix"]
            shape = tuple(int(s) for s in g["shape"][:])
            data = g["data"][:]
            check_count_values(
                data, path=path, field="a count in /matrix/data (entry numbered as the line)", fix=fix
            )
            x = sp.csc_matrix((data.astype(np.float32), g["indices"][:], g["indptr"][:]), shape=shape)
            barcodes = g["barcodes"][:].astype(str)
            ids = g["features"]["id"][:].astype(str)
            names = g["features"]["name"][:].astype(str)
            ftype = g["features"]["feature_type"][:].astype(str) if "feature_type" in g["features"] else None
    except OSError as err:
        raise InputError(path, f"not a readable HDF5 file ({err})", fix) from None
    keep = np.ones(len(ids), dtype=bool) if ftype is None else ftype == "Gene Expression"
    x = x.T.tocsr()[:, keep]
    adata = ad.AnnData(
        X=x,
        obs=pd.DataFrame(index=pd.Index(barcodes, name="cell_id")),
        var=pd.DataFrame({"gene_name": names[keep]}, index=pd.Index(ids[keep], name="gene_id")),
    )
    adata.var_names_make_unique()
    return adata


def read_h5ad_counts(path: str | os.PathLike) -> ad.AnnData:
    """Read gene counts from an ``.h5ad`` (``X``, else ``layers['counts']``, else ``raw.X``)."""
    path = require_file(path, "gene counts .h5ad")
    from .io import read_anndata

    a = read_anndata(path, "gene counts .h5ad")
    for name, mat, var in (
        ("X", a.X, a.var),
        ("layers['counts']", a.layers.get("counts"), a.var),
        ("raw.X", a.raw.X if a.raw is not None else None, a.raw.var if a.raw is not None else None),
    ):
        if mat is None:
            continue
        m = sp.csr_matrix(mat)
        if m.nnz and np.asarray(m.data).max() > MAX_COUNT:
            raise InputError(
                path,
                f"{name} holds a count of {m.data.max():,.0f}, above the largest count stored "
                f"exactly ({MAX_COUNT:,}, float32 as the model reads it)",
                "check the counts",
            )
        m = sp.csr_matrix(m, dtype=np.float32)
        if m.nnz == 0 or (np.all(m.data >= 0) and np.all(m.data == np.floor(m.data))):
            var = var.copy()
            if "gene_name" not in var:
                var["gene_name"] = var.index.astype(str)
            out = ad.AnnData(X=m, obs=a.obs.copy(), var=var[["gene_name"]].copy())
            out.uns["splicevi_ingest"] = {"gene_format": "h5ad", "counts_from": name}
            return out
    raise InputError(
        path,
        "no raw integer counts in X, layers['counts'] or raw.X (looks normalised)",
        "store raw counts in X or layers['counts'] of the .h5ad",
    )


def read_star_counts(
    sheet: pd.DataFrame, strandedness: str = "unstranded", progress: bool = True
) -> ad.AnnData:
    """Read STAR ``ReadsPerGene.out.tab`` files (cell sheet ``cell_id``, ``path``) into cells × genes."""
    col = _STRANDED_COLUMN[strandedness]
    fix = "pass STAR's ReadsPerGene.out.tab unchanged (4 tab-separated columns, 4 N_ summary lines)"
    genes = None
    cols = []
    for path in tqdm(
        sheet["path"].tolist(), desc="reading ReadsPerGene files", unit="cell", disable=not progress
    ):
        df = read_typed(
            path,
            {0: str, 1: np.int64, 2: np.int64, 3: np.int64},
            what="STAR ReadsPerGene.out.tab",
            fix=fix,
            count_cols=(1, 2, 3),
            max_count=None,
        )
        df = df[~df[0].str.startswith("N_")]  # summary lines: read counts of the whole cell, not stored
        for c in (1, 2, 3):  # the index is the 0-based line
            bad = df[c].to_numpy() > MAX_COUNT
            if bad.any():
                i = int(np.nonzero(bad)[0][0])
                check_count_values(
                    df[c].to_numpy()[i : i + 1],
                    path=path,
                    field=f"column {c + 1}",
                    fix=fix,
                    line_offset=int(df.index[i]),
                )
        if genes is None:
            genes = df[0].to_numpy()
        elif len(df) != len(genes) or not np.array_equal(df[0].to_numpy(), genes):
            raise InputError(
                path, "gene list differs from the first file's", "count all cells with the same annotation"
            )
        cols.append(sp.csr_matrix(df[col].to_numpy(dtype=np.float32)[None, :]))
    x = sp.vstack(cols).tocsr()
    obs = sheet.drop(columns=["path"]).copy()
    return ad.AnnData(
        X=x, obs=obs, var=pd.DataFrame({"gene_name": genes}, index=pd.Index(genes, name="gene_id"))
    )


def read_star_counts_sheet(
    path: str | os.PathLike, strandedness: str = "unstranded", progress: bool = True
) -> ad.AnnData:
    """Read the ``ReadsPerGene.out.tab`` files listed in a cell sheet (``cell_id``, ``path``)."""
    return read_star_counts(read_cell_sheet(path), strandedness=strandedness, progress=progress)


def detect_gene_format(path: str | os.PathLike) -> str:
    """Guess the gene-count format of a path from the registered formats (a folder: the first folder format)."""
    p = Path(require_file(path, "gene counts"))
    fmt = formats.format_of_folder("genes", p) if p.is_dir() else formats.format_of_name("genes", p.name)
    if fmt is None:
        raise InputError(p, "cannot tell the gene-count format", "pass --gene-format")
    return fmt


def read_genes(
    path: str | os.PathLike, fmt: str = "auto", strandedness: str = "unstranded", progress: bool = True
) -> ad.AnnData:
    """Read gene counts of any registered format (see module docstring) into cells × genes CSR."""
    if fmt != formats.AUTO:
        formats.get_reader("genes", fmt)
    if fmt == formats.AUTO:
        fmt = detect_gene_format(path)
    entry = formats.get_reader("genes", fmt)
    given = {"strandedness": strandedness, "progress": progress}
    adata = entry.read(path, **{k: v for k, v in given.items() if k in entry.options})
    adata.obs.index = adata.obs.index.astype(str)
    adata.obs.index.name = "cell_id"
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.obs["n_counts"] = count_totals(adata.X, axis=1)
    adata.obs["n_genes"] = np.diff(adata.X.indptr)
    adata.uns["splicevi_ingest"] = {
        **adata.uns.get("splicevi_ingest", {}),
        "gene_format": fmt,
        "genes": str(path),
    }
    return adata


# the registry entries (detection tries them in this order)
formats.register_reader(
    "genes",
    formats.Reader(
        "starsolo",
        read_mtx_dir,
        is_folder=Path.is_dir,
        help="STARsolo Gene folder (matrix.mtx, features, barcodes)",
    ),
)
formats.register_reader(
    "genes", formats.Reader("10x_h5", read_10x_h5, suffixes=(".h5",), help="Cell Ranger v3 .h5")
)
formats.register_reader(
    "genes",
    formats.Reader("mtx", read_mtx_dir, help="matrix.mtx folder (Cell Ranger filtered_feature_bc_matrix)"),
)
formats.register_reader(
    "genes", formats.Reader("h5ad", read_h5ad_counts, suffixes=(".h5ad",), help="AnnData with integer counts")
)
formats.register_reader(
    "genes",
    formats.Reader(
        "star_counts",
        read_star_counts_sheet,
        suffixes=(".tsv", ".csv", ".txt"),
        per_cell=True,
        options=("strandedness", "progress"),
        help="cell sheet of STAR ReadsPerGene.out.tab files",
    ),
)
