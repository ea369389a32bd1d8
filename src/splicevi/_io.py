"""Small I/O helpers shared by every stage: atomic writes and file checks."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    Nothing half-written is ever left under the final name: on error the temporary file (or
    directory) is removed and ``path`` is untouched.

    Parameters
    ----------
    path
        Final destination (file or directory).
    suffix
        Suffix of the temporary name; defaults to the final name's suffix so writers that infer the
        format from the extension (h5ad, h5mu, parquet) keep working.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = final.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # the writer creates it (file or directory)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            import shutil

            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def require_file(path: str | os.PathLike, what: str = "input file") -> Path:
    """Return ``Path(path)`` or raise ``FileNotFoundError`` naming what was expected there."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p} (check the path in your config or command line)")
    return p


def write_x_as_layer(data, path: str | os.PathLike, layer: str, modality: str | None = None) -> None:
    """Write an AnnData / MuData whose ``X`` is the same matrix as ``layers[layer]``, storing it once.

    Scanpy reads ``X`` (``sc.pp.calculate_qc_metrics``, ``sc.pl.umap(color=<feature>)``) while the model
    reads the named layer; both hold the counts. Written naively the counts would be stored twice, so
    ``X`` is written as an HDF5 hard link to the layer: one copy on disk, and every reader (anndata,
    mudata, h5py) sees an ordinary ``X``. When ``X`` is not that matrix, the object is written as is.

    Parameters
    ----------
    data
        AnnData (``.h5ad``) or MuData (``.h5mu``, then ``modality`` names the AnnData).
    path
        Output file (write it through :func:`atomic_path`).
    layer
        The layer that ``X`` mirrors.
    modality
        MuData only: the modality whose ``X`` is linked.
    """
    import h5py

    adata = data[modality] if modality is not None else data
    if adata.X is None or adata.layers.get(layer) is not adata.X:
        data.write(path) if modality is not None else data.write_h5ad(path)
        return
    x = adata.X
    adata.X = None
    try:
        data.write(path) if modality is not None else data.write_h5ad(path)
    finally:
        adata.X = x
    prefix = f"mod/{modality}/" if modality is not None else ""
    with h5py.File(path, "r+") as fh:
        if f"{prefix}X" in fh:  # an empty X written by an older anndata
            del fh[f"{prefix}X"]
        fh[f"{prefix}X"] = fh[f"{prefix}layers/{layer}"]
