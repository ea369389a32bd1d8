"""Reading the intermediate files of the pipeline (parts of them, without loading everything)."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import pandas as pd

from splicevi._io import require_file

from ._tables import InputError

#: What a reader of HDF5-based files raises on a damaged or foreign file (h5py: OSError without the
#: path; anndata/mudata: KeyError, ValueError, TypeError on a missing or odd element).
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, AttributeError, IndexError)


def _h5_fix(what: str, made_by: str | None) -> str:
    return (
        f"pass the {what} written by {made_by}" if made_by else f"pass a valid {what}"
    ) + " (re-create it if the copy is incomplete)"


def _read_hdf5(path, what: str, made_by: str | None, read):
    """``read(path)`` of an HDF5-based file, with errors that name the file and the fix."""
    path = require_file(path, what)
    try:
        return read(path)
    except FileNotFoundError:
        raise
    except _H5_ERRORS as err:
        raise InputError(
            path,
            f"not a readable {what} ({type(err).__name__}: {' '.join(str(err).split())})",
            _h5_fix(what, made_by),
        ) from None


def read_anndata(path: str | os.PathLike, what: str, made_by: str | None = None, **kwargs) -> ad.AnnData:
    """``anndata.read_h5ad`` with errors that name the file (a garbage or truncated file included)."""
    return _read_hdf5(path, what, made_by, lambda p: ad.read_h5ad(p, **kwargs))


def read_mudata_file(path: str | os.PathLike, what: str = "MuData (.h5mu)", made_by: str | None = None):
    """``mudata.read_h5mu`` with errors that name the file (a garbage or truncated file included)."""
    import mudata as md

    return _read_hdf5(path, what, made_by, md.read_h5mu)


def read_junction_var(path: str | os.PathLike) -> pd.DataFrame:
    """The junction table (``var``) of a junctions ``.h5ad`` without reading the count matrix."""
    try:
        with h5py.File(path, "r") as f:
            var = ad.io.read_elem(f["var"])
    except (OSError, KeyError) as err:
        raise InputError(
            path, f"not a junctions .h5ad ({err})", "pass the --out-junctions file of `splicevi ingest`"
        ) from None
    need = {"chrom", "start", "end", "strand", "total_reads", "n_cells"}
    if not need <= set(var.columns):
        raise InputError(
            path,
            f"junction table lacks {sorted(need - set(var.columns))}",
            "pass the --out-junctions file of `splicevi ingest`",
        )
    return var
