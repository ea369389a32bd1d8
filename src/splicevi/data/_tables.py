"""Strict parsing of delimited text tables with errors that name the file, the line and the fix.

Every reader of user files goes through :func:`read_delimited` and :func:`integer_column`, so bad
input (wrong column count, truncated or corrupt compressed files, non-integer or negative counts,
empty files) fails the same way everywhere: an :class:`InputError` that says where and what to do.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from splicevi._io import require_file


class InputError(ValueError):
    """A problem with a user's input file, located by file and line (or field), with the fix."""

    def __init__(self, path: str | os.PathLike, problem: str, fix: str, line: int | None = None):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}. Fix: {fix}")
        self.path = str(path)
        self.line = line


_LINE_RE = re.compile(r"line (\d+)")


def read_delimited(
    path: str | os.PathLike,
    n_cols: int | tuple[int, ...],
    *,
    what: str,
    fix: str,
    sep: str = "\t",
    skiprows: int = 0,
    allow_empty: bool = False,
) -> pd.DataFrame:
    """Read a headerless delimited file as strings, checking its shape.

    Parameters
    ----------
    path
        Plain or compressed (``.gz``, ``.bz2``, ``.zst`` by extension) text file.
    n_cols
        Expected number of columns (or the accepted numbers).
    what
        Name of the format for messages, e.g. ``"STAR SJ.out.tab"``.
    fix
        What the user should do when the file is malformed.
    sep
        Field separator.
    skiprows
        Header lines to skip (their count is added to reported line numbers).
    allow_empty
        Return an empty frame instead of raising on an empty file.

    Returns
    -------
    pandas.DataFrame
        All fields as strings (missing trailing fields as ``""``); integer column labels.
    """
    path = require_file(path, what)
    accepted = (n_cols,) if isinstance(n_cols, int) else tuple(n_cols)
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,  # keep line numbers exact; blank lines are reported below
            skiprows=skiprows,
            compression="infer",
            engine="c",
        )
    except pd.errors.EmptyDataError:
        if allow_empty:
            return pd.DataFrame(columns=range(accepted[0]), dtype=str)
        raise InputError(path, f"the {what} file is empty", fix, line=skiprows + 1) from None
    except pd.errors.ParserError as err:
        m = _LINE_RE.search(str(err))
        line = int(m.group(1)) + skiprows if m else None
        raise InputError(
            path, f"wrong number of columns for {what} ({str(err).split('C error: ')[-1]})", fix, line=line
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as err:
        raise InputError(
            path, f"the file is truncated or not a valid {what} text file ({type(err).__name__}: {err})", fix
        ) from None
    if df.shape[1] not in accepted:
        raise InputError(
            path,
            f"{df.shape[1]} column(s) where {what} has {' or '.join(map(str, accepted))}",
            fix,
            line=skiprows + 1,
        )
    if len(df) == 0 and not allow_empty:
        raise InputError(path, f"the {what} file has no data lines", fix, line=skiprows + 1)
    check_no_nul(path, what=what, fix=fix)
    empty = (df == "").to_numpy()
    if empty.any():
        row = int(np.nonzero(empty.any(axis=1))[0][0])
        col = int(np.nonzero(empty[row])[0][0])
        raise InputError(
            path,
            f"empty or missing field {col + 1} (truncated line, blank line or wrong column count for {what})",
            fix,
            line=skiprows + row + 1,
        )
    return df


def integer_column(
    values: pd.Series,
    *,
    path: str | os.PathLike,
    field: str,
    fix: str,
    line_offset: int = 0,
    allow_negative: bool = False,
    dtype: type = np.int64,
) -> np.ndarray:
    """Convert a string column to integers, reporting the first bad line.

    ``line_offset`` is the number of lines before the first row of ``values`` (header lines), so the
    reported line is the line of the file.
    """
    num = pd.to_numeric(values, errors="coerce")
    arr = num.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(arr) | (arr != np.floor(arr))
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(
            path,
            f"{field} is {values.iloc[i]!r}, not an integer",
            fix,
            line=line_offset + i + 1,
        )
    if not allow_negative and (arr < 0).any():
        i = int(np.nonzero(arr < 0)[0][0])
        raise InputError(path, f"{field} is negative ({values.iloc[i]})", fix, line=line_offset + i + 1)
    return arr.astype(dtype)


def _open_binary(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")


def check_no_nul(path: str | os.PathLike, *, what: str, fix: str) -> None:
    """Refuse a file holding NUL bytes (binary data, a damaged copy).

    pandas' C parser ends a field at a NUL byte without a word, so ``5<NUL>7`` would be read as 5.
    The scan streams the (decompressed) bytes once.
    """
    path = Path(path)
    if path.suffix.lower() == ".zst":
        return  # no decompressor in the standard library; pandas reads it
    line = 1
    try:
        with _open_binary(path) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                pos = chunk.find(b"\x00")
                if pos >= 0:
                    raise InputError(path, f"NUL byte in the {what} file (binary data or a damaged copy)", fix,
                                     line=line + chunk.count(b"\n", 0, pos))
                line += chunk.count(b"\n")
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(path, f"the file is truncated or not a valid {what} file ({type(err).__name__}: {err})",
                         fix) from None


def table_suffix(path: str | os.PathLike) -> str:
    """Extension of a table file ignoring compression (``x.tsv.gz`` → ``.tsv``)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".xz"):
        suffixes = suffixes[:-1]
    return suffixes[-1] if suffixes else ""


def read_typed(
    path: str | os.PathLike,
    dtypes: dict[int, object],
    *,
    what: str,
    fix: str,
    sep: str = "\t",
    skiprows: int = 0,
    count_cols: tuple[int, ...] = (),
) -> pd.DataFrame:
    """Fast typed read of a headerless table; on any problem, re-read strictly to locate it.

    The typed path (C parser, numeric dtypes) is what runs on good files; the strict path of
    :func:`read_delimited` runs only to produce a precise message (file, line, fix) for bad ones.
    ``count_cols`` must be non-negative integers.
    """
    path = require_file(path, what)
    n_cols = max(dtypes) + 1
    try:
        df = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=dtypes,
            skiprows=skiprows,
            compression="infer",
            engine="c",
            skip_blank_lines=False,
        )
        ok = df.shape[1] == n_cols and len(df) > 0 and not df.isna().to_numpy().any()
        if ok:
            for c in count_cols:
                if (df[c].to_numpy() < 0).any():
                    ok = False
                    break
    except (ValueError, TypeError, OverflowError, EOFError, OSError, zlib.error, pd.errors.ParserError):
        # ValueError covers pandas' EmptyDataError and failed integer conversions.
        ok = False
    if ok:
        check_no_nul(path, what=what, fix=fix)
        return df
    strict = read_delimited(path, n_cols, what=what, fix=fix, sep=sep, skiprows=skiprows)
    for c, dt in dtypes.items():
        if np.issubdtype(np.dtype(dt), np.integer):
            integer_column(
                strict[c],
                path=path,
                field=f"column {c + 1}",
                fix=fix,
                line_offset=skiprows,
                allow_negative=c not in count_cols,
            )
        elif np.issubdtype(np.dtype(dt), np.floating):
            num = pd.to_numeric(strict[c], errors="coerce")
            if num.isna().any():
                i = int(np.nonzero(num.isna().to_numpy())[0][0])
                raise InputError(path, f"column {c + 1} is {strict[c].iloc[i]!r}, not a number", fix, skiprows + i + 1)
    raise InputError(path, f"could not be read as {what}", fix)
