"""Matrix Market (``matrix.mtx[.gz]``) reader with located errors, as written by STARsolo / Cell Ranger."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from splicevi._io import require_file

from ._tables import InputError, first_bad_line, read_typed


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def read_mtx(path: str | os.PathLike, *, what: str = "Matrix Market", integer: bool = True) -> sp.coo_matrix:
    """Read a coordinate Matrix Market file into a COO matrix (rows × columns as in the file).

    Hand-written rather than :func:`scipy.io.mmread` for its errors: a damaged, truncated or
    non-count file is reported with the file, the line and the fix, not a parser traceback.

    Parameters
    ----------
    path
        ``matrix.mtx`` or ``matrix.mtx.gz``.
    what
        Name used in messages.
    integer
        Require non-negative integer values (junction or UMI counts).

    Raises
    ------
    InputError
        Not coordinate format, bad size line, out-of-range indices, truncated file, non-integer or
        negative values, with the line.
    """
    path = require_file(path, what)
    fix = f"re-create {path.name} (STARsolo / Cell Ranger output) or check that the copy is complete"
    n_header = 0
    try:
        with _open_text(path) as fh:
            first = fh.readline()
            n_header = 1
            if not first.startswith("%%MatrixMarket"):
                raise InputError(
                    path, "not a Matrix Market file (first line lacks '%%MatrixMarket')", fix, line=1
                )
            if "coordinate" not in first:
                raise InputError(
                    path, "only the sparse 'coordinate' Matrix Market format is supported", fix, line=1
                )
            is_real = "real" in first or "double" in first
            line = fh.readline()
            n_header += 1
            while line.startswith("%"):
                line = fh.readline()
                n_header += 1
    except (EOFError, OSError, UnicodeDecodeError) as err:  # zlib/gzip errors are OSError or EOFError
        raise InputError(
            path,
            f"the file is truncated, unreadable or not text ({err})",
            fix,
            line=first_bad_line(path) or 1,
        ) from None
    try:
        n_rows, n_cols, nnz = (int(x) for x in line.split())
    except ValueError:
        raise InputError(
            path, f"bad size line {line.strip()!r} (expected 'rows columns entries')", fix, n_header
        ) from None
    if nnz == 0:
        empty = sp.coo_matrix((n_rows, n_cols), dtype=np.float32)
        empty.size_line = n_header  # for messages about the matrix's shape
        return empty
    if integer and is_real:
        # STARsolo writes 'integer' for counts; a 'real' header may still hold whole numbers.
        dtypes = {0: np.int64, 1: np.int64, 2: np.float64}
    else:
        dtypes = {0: np.int64, 1: np.int64, 2: np.int64 if integer else np.float64}
    df = read_typed(path, dtypes, what=what, fix=fix, sep=r"\s+", skiprows=n_header, count_cols=(2,))
    if len(df) != nnz:
        raise InputError(
            path,
            f"{len(df)} entries where the size line says {nnz} (truncated file?)",
            fix,
            line=n_header + len(df),
        )
    rows = df[0].to_numpy() - 1
    cols = df[1].to_numpy() - 1
    vals = df[2].to_numpy()
    for idx, limit, name in ((rows, n_rows, "row"), (cols, n_cols, "column")):
        bad = (idx < 0) | (idx >= limit)
        if bad.any():
            i = int(np.nonzero(bad)[0][0])
            raise InputError(
                path, f"{name} index {idx[i] + 1} outside 1..{limit}", fix, line=n_header + i + 1
            )
    if integer and np.any(vals != np.floor(vals)):
        i = int(np.nonzero(vals != np.floor(vals))[0][0])
        raise InputError(path, f"count {vals[i]} is not an integer", fix, line=n_header + i + 1)
    mat = sp.coo_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_rows, n_cols))
    mat.size_line = n_header  # for messages about the matrix's shape
    return mat
