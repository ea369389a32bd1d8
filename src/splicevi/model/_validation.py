"""Checks of the splicing input, with errors that name the layer, the problem and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from .._constants import EVENT_ID_COLUMN


def get_matrix(adata: AnnData, layer: str | None, where: str):
    """``adata.layers[layer]`` (or ``.X``), with an error listing the layers that exist."""
    if layer is None:
        if adata.X is None:
            raise ValueError(f"{where}: .X is empty; name the layer that holds the data")
        return adata.X
    if layer not in adata.layers:
        raise ValueError(
            f"{where}: layer {layer!r} not found; available layers: {sorted(adata.layers)}. "
            "Pass the right layer name to setup_mudata / setup_anndata, or build the file with "
            "`splicevi assemble`."
        )
    return adata.layers[layer]


def _values(matrix) -> np.ndarray:
    """Stored values of a sparse matrix, or all values of a dense one."""
    if sp.issparse(matrix):
        return np.asarray(matrix.data)
    return np.asarray(matrix)


def check_values(matrix, name: str, counts: bool) -> None:
    """No NaN/inf; non-negative; for counts, integers."""
    values = _values(matrix)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        n_bad = int((~np.isfinite(values)).sum())
        raise ValueError(
            f"layer {name!r} has {n_bad} NaN/inf value(s); replace them (missing is 0 / unobserved)."
        )
    if values.min() < 0:
        raise ValueError(
            f"layer {name!r} has negative values (min {values.min():g}); read counts must be ≥ 0. "
            "Check that the layer holds raw counts, not normalised or centred values."
        )
    if counts and not np.all(np.equal(np.mod(values, 1), 0)):
        raise ValueError(f"layer {name!r} has non-integer values; it must hold raw read counts.")


def check_shapes(matrices: dict[str, object], shape: tuple[int, int]) -> None:
    """Every splicing matrix has the expected (cells, columns) shape."""
    for name, matrix in matrices.items():
        if matrix is not None and tuple(matrix.shape) != tuple(shape):
            raise ValueError(
                f"layer {name!r} has shape {tuple(matrix.shape)} but the splicing data has shape {tuple(shape)}; "
                "all splicing layers must be cells × junctions of the same modality."
            )


def check_k_le_n(k, n, k_name: str, n_name: str) -> None:
    """Junction counts never exceed their ATSE totals."""
    if sp.issparse(k) or sp.issparse(n):
        diff = sp.csr_matrix(k, dtype=np.float64) - sp.csr_matrix(n, dtype=np.float64)
        worst = diff.max() if diff.nnz else 0.0
    else:
        worst = float(np.max(np.asarray(k, dtype=np.float64) - np.asarray(n, dtype=np.float64)))
    if worst > 0:
        raise ValueError(
            f"layer {k_name!r} exceeds {n_name!r} (k > n by up to {worst:g}): a junction cannot have more "
            "reads than its ATSE. The two layers are probably swapped or from different filters."
        )


def junction_event_codes(var: pd.DataFrame, where: str) -> np.ndarray:
    """ATSE code of each junction from ``var['event_id']``, with checks.

    Raises
    ------
    ValueError
        When the column is missing, a junction has no event id, or an event has a single junction.
    """
    if EVENT_ID_COLUMN not in var.columns:
        raise ValueError(
            f"{where}: var has no {EVENT_ID_COLUMN!r} column; every junction needs the ATSE it belongs to "
            "(run `splicevi atse` and `splicevi assemble`, or add the column)."
        )
    ids = var[EVENT_ID_COLUMN]
    missing = ids.isna() | (ids.astype(str).str.strip() == "")
    if missing.any():
        example = list(var.index[missing.to_numpy()][:3])
        raise ValueError(
            f"{where}: {int(missing.sum())} junction(s) have no {EVENT_ID_COLUMN!r} (e.g. {example}); drop them "
            "or assign their ATSE."
        )
    codes, uniques = pd.factorize(ids.astype(str), sort=False)
    sizes = np.bincount(codes, minlength=len(uniques))
    if (sizes < 2).any():
        single = list(np.asarray(uniques)[sizes < 2][:3])
        raise ValueError(
            f"{where}: {int((sizes < 2).sum())} event(s) have a single junction (e.g. {single}); an ATSE needs at "
            "least two junctions. Drop those junctions (splicevi atse does) before training."
        )
    return codes.astype(np.int64)
