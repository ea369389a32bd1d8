"""Reading the intermediate files of the pipeline (parts of them, without loading everything)."""

from __future__ import annotations

import os

import anndata as ad
import h5py
import pandas as pd

from ._tables import InputError


def read_junction_var(path: str | os.PathLike) -> pd.DataFrame:
    """The junction table (``var``) of a junctions ``.h5ad`` without reading the count matrix."""
    try:
        with h5py.File(path, "r") as f:
            var = ad.io.read_elem(f["var"])
    except (OSError, KeyError) as err:
        raise InputError(path, f"not a junctions .h5ad ({err})", "pass the --out-junctions file of `splicevi ingest`") \
            from None
    need = {"chrom", "start", "end", "strand", "total_reads", "n_cells"}
    if not need <= set(var.columns):
        raise InputError(path, f"junction table lacks {sorted(need - set(var.columns))}",
                         "pass the --out-junctions file of `splicevi ingest`")
    return var
