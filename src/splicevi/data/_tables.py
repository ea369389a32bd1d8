"""Strict parsing of delimited text tables with errors that name the file, the line and the fix.

Every reader of user files goes through :func:`read_delimited` and :func:`integer_column`, so bad
input (wrong column count, truncated or corrupt compressed files, non-integer or negative counts,
empty files) fails the same way everywhere: an :class:`InputError` that says where and what to do.
"""

from __future__ import annotations

import csv
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

#: Largest count a cell × feature entry may hold: 2**24 = 16,777,216, the largest integer float32
#: holds exactly. Counts are float32 in the .h5ad/.h5mu layers because scvi-tools feeds the model
#: float32 minibatches: storing them as int32/int64 would double nothing's precision in the model
#: (every minibatch is cast to float32) and a larger count would be rounded there silently. A larger
#: entry (no single-cell library has 16.7 million reads on one junction of one cell) is refused with
#: its file and line instead. Totals over cells or features exceed this easily: they are always
#: summed in float64 and kept as int64 (:func:`count_totals`).
MAX_COUNT = 2**24

#: A decimal integer as the text formats write it; no exponent (``1e3``), no fraction.
_INTEGER_RE = re.compile(r"^\s*[+-]?\d+\s*$")
_INTEGER_OR_ZERO_DECIMALS_RE = re.compile(r"^\s*[+-]?\d+(\.0*)?\s*$")

#: Digits an int64 always holds (9,223,372,036,854,775,807 has 19).
_SAFE_DIGITS = 18


#: Quotes and control characters: never part of a chromosome (or barcode) name in these formats.
_BAD_NAME_RE = re.compile(r"[\x00-\x1f\x7f\"']")


def check_names(
    values,
    *,
    path: str | os.PathLike,
    field: str,
    fix: str,
    line_offset: int = 0,
) -> None:
    """Names (chromosomes) must hold no quote and no control character; else an error naming the line."""
    text = pd.Series(np.asarray(values, dtype=object)).astype(str)
    bad = text.str.contains(_BAD_NAME_RE).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(
            path,
            f"{field} {text.iloc[i]!r} holds a quote or a control character (these formats have "
            "no quoting: a damaged or hand-edited line?)",
            fix,
            line=line_offset + i + 1,
        )


def count_totals(x, axis: int) -> np.ndarray:
    """Exact int64 totals of a (sparse or dense) count matrix along ``axis`` (summed in float64).

    scipy sums a float32 matrix in float32, which rounds totals above 16,777,216.
    """
    import scipy.sparse as sp

    if sp.issparse(x):
        return np.rint(np.asarray(x.astype(np.float64).sum(axis=axis)).ravel()).astype(np.int64)
    return np.rint(np.asarray(x, dtype=np.float64).sum(axis=axis)).astype(np.int64).ravel()


def check_count_values(
    values: np.ndarray,
    *,
    path: str | os.PathLike,
    field: str,
    fix: str,
    line_offset: int = 0,
) -> None:
    """Counts (numbers already parsed) must be finite, whole, ≥ 0 and ≤ :data:`MAX_COUNT`; else the line."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr > MAX_COUNT)
    else:
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(arr) | (arr != np.floor(arr)) | (arr < 0) | (arr > MAX_COUNT)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        v = arr[i]
        if arr.dtype.kind == "f" and not np.isfinite(v):
            problem = f"{field} is {v}, not a count"
        elif arr.dtype.kind == "f" and v != np.floor(v):
            problem = f"{field} is {v}, not an integer"
        elif v < 0:
            problem = f"{field} is negative ({v})"
        else:
            problem = (
                f"{field} is {int(v):,}, above the largest count stored exactly ({MAX_COUNT:,}, float32 as "
                "the model reads it)"
            )
        raise InputError(path, problem, fix, line=line_offset + i + 1)


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
            quoting=csv.QUOTE_NONE,  # these formats have no quoting: a stray " must not join lines
        )
    except pd.errors.EmptyDataError:
        if allow_empty:
            return pd.DataFrame(columns=range(accepted[0]), dtype=str)
        raise InputError(path, f"the {what} file is empty", fix, line=skiprows + 1) from None
    except pd.errors.ParserError as err:
        line = parser_error_line(err, skiprows)
        raise InputError(
            path, f"wrong number of columns for {what} ({str(err).split('C error: ')[-1]})", fix, line=line
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as err:
        raise InputError(
            path,
            f"the file is truncated or not a valid {what} text file ({type(err).__name__}: {err})",
            fix,
            line=first_bad_line(path),
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
    max_value: int | None = None,
    zero_decimals: bool = True,
) -> np.ndarray:
    """Convert a string column to integers, reporting the first bad line.

    Only decimal digits are integers (``1e3``, ``inf`` and ``2.5`` are not); ``5.0`` is accepted when
    ``zero_decimals`` (tables written from float columns). A value beyond int64, or above
    ``max_value``, is an error rather than a wrapped-around number. ``line_offset`` is the number of
    lines before the first row of ``values`` (header lines), so the reported line is the line of
    the file.
    """
    text = values.astype(str)
    pattern = _INTEGER_OR_ZERO_DECIMALS_RE if zero_decimals else _INTEGER_RE
    bad = ~text.str.fullmatch(pattern).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(
            path,
            f"{field} is {values.iloc[i]!r}, not an integer (digits only: no fraction, no exponent such as 1e3)",
            fix,
            line=line_offset + i + 1,
        )
    digits = text.str.strip().str.replace(r"\..*$", "", regex=True)
    n_digits = digits.str.lstrip("+-").str.lstrip("0").str.len().to_numpy()
    if (n_digits > _SAFE_DIGITS).any():
        i = int(np.nonzero(n_digits > _SAFE_DIGITS)[0][0])
        raise InputError(
            path,
            f"{field} is {values.iloc[i]!r}, too large for a count or coordinate",
            fix,
            line=line_offset + i + 1,
        )
    arr = digits.astype(np.int64).to_numpy()
    if not allow_negative and (arr < 0).any():
        i = int(np.nonzero(arr < 0)[0][0])
        raise InputError(path, f"{field} is negative ({values.iloc[i]})", fix, line=line_offset + i + 1)
    if max_value is not None and (arr > max_value).any():
        i = int(np.nonzero(arr > max_value)[0][0])
        raise InputError(
            path,
            f"{field} is {arr[i]:,}, above the largest count stored exactly ({max_value:,}, "
            "float32 as the model reads it)",
            fix,
            line=line_offset + i + 1,
        )
    return arr.astype(dtype)


def parser_error_line(err: Exception, skiprows: int = 0) -> int | None:
    """The file line of a pandas ``ParserError`` ("... in line 9 ..." or "... starting at row 11")."""
    m = _LINE_RE.search(str(err))
    if m:
        return int(m.group(1)) + skiprows
    m = re.search(r"row (\d+)", str(err))
    return int(m.group(1)) + 1 + skiprows if m else None


def first_bad_line(path: str | os.PathLike) -> int | None:
    """Line of the first undecodable (non UTF-8) line, or where a truncated compressed file stops.

    Streams the (decompressed) file once; ``None`` when every line reads.
    """
    line = 0
    try:
        with _open_binary(Path(path)) as fh:
            for line, raw in enumerate(fh, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    return line
    except (EOFError, OSError, zlib.error):
        return line + 1  # the line being decompressed when the data ended
    return None


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


#: A field written as a decimal or in exponent notation (``1e3``, ``5.0``): pandas reads both into
#: integer columns without a word, so files holding one are checked strictly.
_NOT_INTEGER_FIELD = re.compile(rb"[+-]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)(?=[\t ,\r\n]|$)")


def _chunk_has_non_integer_field(chunk: bytes) -> bool:
    """Whether a field of ``chunk`` (whole lines) is a decimal or exponent number.

    Only the fields around a ``.``, ``e`` or ``E`` are looked at (``bytes.find`` in C): a regular
    expression over every byte of a large table costs more than reading it.
    """
    for mark in (b".", b"e", b"E"):
        pos = chunk.find(mark)
        while pos >= 0:
            start = max(chunk.rfind(b"\t", 0, pos), chunk.rfind(b"\n", 0, pos), chunk.rfind(b" ", 0, pos)) + 1
            if _NOT_INTEGER_FIELD.match(chunk, start):
                return True
            end = min(
                (i for i in (chunk.find(b"\t", pos), chunk.find(b"\n", pos)) if i >= 0), default=len(chunk)
            )
            pos = chunk.find(mark, end)
    return False


def has_non_integer_fields(path: str | os.PathLike) -> bool:
    """Whether any field of the (decompressed) file is a number with a decimal point or an exponent."""
    with _open_binary(Path(path)) as fh:
        while True:
            chunk = fh.read(1 << 20)
            if not chunk:
                return False
            chunk += fh.readline()  # whole lines only: no field is cut between two chunks
            if _chunk_has_non_integer_field(chunk):
                return True


def check_no_nul(path: str | os.PathLike, *, what: str, fix: str, find_non_integer: bool = False) -> bool:
    """Refuse a file holding NUL bytes (binary data, a damaged copy).

    pandas' C parser ends a field at a NUL byte without a word, so ``5<NUL>7`` would be read as 5.
    The scan streams the (decompressed) bytes once; with ``find_non_integer`` it also returns
    whether a field is a number with a decimal point or an exponent (which pandas reads into integer
    columns silently; see :func:`has_non_integer_fields`).
    """
    path = Path(path)
    if path.suffix.lower() == ".zst":
        return False  # no decompressor in the standard library; pandas reads it
    line = 1
    found = False
    try:
        with _open_binary(path) as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                chunk += fh.readline()  # whole lines only: no field is cut between two chunks
                pos = chunk.find(b"\x00")
                if pos >= 0:
                    raise InputError(
                        path,
                        f"NUL byte in the {what} file (binary data or a damaged copy)",
                        fix,
                        line=line + chunk.count(b"\n", 0, pos),
                    )
                line += chunk.count(b"\n")
                if find_non_integer and not found:
                    found = _chunk_has_non_integer_field(chunk)
    except (EOFError, OSError, zlib.error) as err:
        raise InputError(
            path,
            f"the file is truncated or not a valid {what} file ({type(err).__name__}: {err})",
            fix,
            line=first_bad_line(path),
        ) from None
    return found


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
    max_count: int | None = MAX_COUNT,
) -> pd.DataFrame:
    """Fast typed read of a headerless table; on any problem, re-read strictly to locate it.

    The typed path (C parser, numeric dtypes) is what runs on good files; the strict path of
    :func:`read_delimited` runs only to produce a precise message (file, line, fix) for bad ones.
    ``count_cols`` must be non-negative integers, at most ``max_count`` (``None``: the int64 range).
    """
    limit = np.inf if max_count is None else max_count
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
            quoting=csv.QUOTE_NONE,
        )
        ok = df.shape[1] == n_cols and len(df) > 0 and not df.isna().to_numpy().any()
        if ok:
            for c in count_cols:
                v = df[c].to_numpy()
                with np.errstate(invalid="ignore"):
                    if (~np.isfinite(v) | (v < 0) | (v > limit) | (v != np.floor(v))).any():
                        ok = False
                        break
    except (ValueError, TypeError, OverflowError, EOFError, OSError, zlib.error, pd.errors.ParserError):
        # ValueError covers pandas' EmptyDataError and failed integer conversions.
        ok = False
    suspicious = False
    if ok:
        suspicious = check_no_nul(
            path,
            what=what,
            fix=fix,
            find_non_integer=any(np.issubdtype(np.dtype(dt), np.integer) for dt in dtypes.values()),
        )
        if not suspicious:
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
                max_value=max_count if c in count_cols else None,
                zero_decimals=False,
            )
        elif np.issubdtype(np.dtype(dt), np.floating):
            num = pd.to_numeric(strict[c], errors="coerce")
            if num.isna().any():
                i = int(np.nonzero(num.isna().to_numpy())[0][0])
                raise InputError(
                    path, f"column {c + 1} is {strict[c].iloc[i]!r}, not a number", fix, skiprows + i + 1
                )
            if c in count_cols and max_count is not None:
                check_count_values(
                    num.to_numpy(dtype=np.float64),
                    path=path,
                    field=f"column {c + 1}",
                    fix=fix,
                    line_offset=skiprows,
                )
    if suspicious:  # the decimal/exponent fields were text columns (or allowed floats): the typed read stands
        return df
    raise InputError(path, f"could not be read as {what}", fix)
