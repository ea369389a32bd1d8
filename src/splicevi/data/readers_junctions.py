"""Readers of junction count tables into one cells × junctions sparse AnnData.

Supported inputs
----------------
``starsolo``
    STARsolo ``--soloFeatures SJ`` output: ``Solo.out/SJ/raw/{matrix.mtx,barcodes.tsv,features.tsv}``
    (matrix rows are junctions, columns barcodes). ``features.tsv`` is STARsolo's symlink to the run's
    ``SJ.out.tab``; when the link is broken (a copied ``Solo.out``), the run's ``SJ.out.tab`` is looked
    up next to ``Solo.out``. The path may be the run directory, ``Solo.out``, ``Solo.out/SJ`` or ``raw``.
``sj_out_tab``
    One STAR ``SJ.out.tab`` per cell (9 columns; 1-based intron; strand 0/1/2; motif 0-6).
``junc``
    One LeafCutter legacy ``.junc`` per cell (6 columns: chrom, 0-based intron start, 1-based intron
    end, name, count, strand).
``regtools``
    One regtools ``junctions extract`` BED12 per cell (anchor span in ``start``/``end``; the intron
    is recovered from the block sizes / starts).
``table``
    A long table (TSV / CSV / Parquet) with columns ``cell, chrom, start, end, strand, count``
    (1-based intron start and end, as in ``SJ.out.tab``); optional ``motif``, ``annotated``.

Per-cell formats take a cell sheet (TSV/CSV with header ``cell_id, path`` and optional ``batch``
and any other per-cell columns; relative paths are relative to the sheet) or a directory whose files
are the cells (cell id = file name without ``.junc`` / ``.out.tab`` / ``.bed`` and compression).

Conventions of the output
-------------------------
``var`` index ``junction_id`` = ``chrom:start-end:strand`` with 1-based first and last intron base,
so the same junction read from any format gets the same id. ``motif`` is STAR's code (0 non-canonical,
1 GT/AG, 2 CT/AC, 3 GC/AG, 4 CT/GC, 5 AT/AC, 6 GT/AT; -1 unknown) and ``annotated`` is 1/0 (-1
unknown). An unknown strand (``.`` / ``?`` / STAR 0) is inferred from the motif when one is known
for that intron, else from the other records of the same intron when they agree on one strand;
otherwise it stays ``.``.
"""

from __future__ import annotations

import logging
import os
import zlib
from functools import partial
from pathlib import Path

import anndata as ad
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
    check_names,
    check_no_nul,
    count_totals,
    first_bad_line,
    integer_column,
    parser_error_line,
    read_delimited,
    read_typed,
    table_suffix,
)

_STAR_STRAND = np.array([".", "+", "-"])
_RECORD_COLUMNS = ["chrom", "start", "end", "strand", "motif", "annotated", "count"]

log = logging.getLogger("splicevi")


def strand_from_motif(motif: np.ndarray) -> np.ndarray:
    """Strand implied by STAR motif codes: odd → ``+``, even > 0 → ``-``, else ``.``."""
    motif = np.asarray(motif)
    return np.where(motif <= 0, ".", np.where(motif % 2 == 1, "+", "-"))


# --------------------------------------------------------------------------------------------
# per-cell files
# --------------------------------------------------------------------------------------------
def read_sj_out_tab_records(path: str | os.PathLike, multimappers: bool = False) -> pd.DataFrame:
    """Records of one STAR ``SJ.out.tab`` (columns of :data:`_RECORD_COLUMNS`).

    ``count`` is the unique reads (column 7), plus multi-mapping reads (column 8) when ``multimappers``.
    """
    fix = "pass STAR's SJ.out.tab unchanged (9 tab-separated columns, integer fields)"
    ints = dict.fromkeys(range(1, 9), np.int64)
    df = read_typed(path, {0: str, **ints}, what="STAR SJ.out.tab", fix=fix, count_cols=(6, 7, 8))
    _check_range(df[3].to_numpy(), 0, 2, path, "column 4 (strand, 0/1/2)", fix)
    _check_range(df[4].to_numpy(), 0, 6, path, "column 5 (motif, 0-6)", fix)
    count = df[6].to_numpy() + (df[7].to_numpy() if multimappers else 0)
    return _records(
        path, df[0], df[1], df[2], _STAR_STRAND[df[3].to_numpy()], df[4], df[5], count, fix, first_line=1
    )


def read_junc_records(path: str | os.PathLike) -> pd.DataFrame:
    """Records of one LeafCutter legacy ``.junc`` (0-based intron start converted to 1-based)."""
    fix = "use LeafCutter's 6-column .junc (chrom, start0, end, name, count, strand), tab-separated"
    df = read_typed(
        path,
        {0: str, 1: np.int64, 2: np.int64, 3: str, 4: np.int64, 5: str},
        what="LeafCutter .junc",
        fix=fix,
        count_cols=(4,),
    )
    n = len(df)
    unknown = np.full(n, -1, dtype=np.int8)
    return _records(
        path, df[0], df[1] + 1, df[2], df[5].to_numpy(), unknown, unknown, df[4], fix, first_line=1
    )


def read_regtools_records(path: str | os.PathLike) -> pd.DataFrame:
    """Records of one regtools BED12 junction file.

    ``start``/``end`` span both anchors (0-based, half-open); the intron runs from the end of the first
    block to the start of the second: first intron base (1-based) ``start + blockSizes[0] + 1``,
    last intron base ``start + blockStarts[1]``.
    """
    fix = "use `regtools junctions extract` output (BED12: 12 tab-separated columns, 2 blocks)"
    dtypes = {
        0: str,
        1: np.int64,
        2: np.int64,
        3: str,
        4: np.int64,
        5: str,
        6: np.int64,
        7: np.int64,
        8: str,
        9: np.int64,
        10: str,
        11: str,
    }
    df = read_typed(path, dtypes, what="regtools BED12 junctions", fix=fix, count_cols=(4,))
    if (df[9] != 2).any():
        i = int(np.nonzero((df[9] != 2).to_numpy())[0][0])
        raise InputError(path, f"blockCount is {df[9].iloc[i]}, a junction has 2 blocks", fix, line=i + 1)
    sizes = df[10].str.rstrip(",").str.split(",", expand=True)
    starts = df[11].str.rstrip(",").str.split(",", expand=True)
    if sizes.shape[1] != 2 or starts.shape[1] != 2:
        raise InputError(path, "blockSizes / blockStarts must list 2 values", fix, line=1)
    size0 = integer_column(sizes[0], path=path, field="blockSizes", fix=fix)
    start1 = integer_column(starts[1], path=path, field="blockStarts", fix=fix)
    unknown = np.full(len(df), -1, dtype=np.int8)
    base = df[1].to_numpy()
    return _records(
        path,
        df[0],
        base + size0 + 1,
        base + start1,
        df[5].to_numpy(),
        unknown,
        unknown,
        df[4],
        fix,
        first_line=1,
    )


def _check_range(values, lo, hi, path, field, fix):
    bad = (values < lo) | (values > hi)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(path, f"{field} is {values[i]}, expected {lo}..{hi}", fix, line=i + 1)


def _records(path, chrom, start, end, strand, motif, annotated, count, fix, first_line) -> pd.DataFrame:
    """Validate and assemble per-record columns (1-based intron start/end)."""
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    bad = (start < 1) | (end < start)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(
            path,
            f"intron start {start[i]} / end {end[i]} invalid (start must be ≥ 1 and ≤ end)",
            fix,
            line=first_line + i,
        )
    chrom = np.asarray(chrom, dtype=object)
    if (chrom == "").any():
        i = int(np.nonzero(chrom == "")[0][0])
        raise InputError(path, "empty chromosome name", fix, line=first_line + i)
    check_names(chrom, path=path, field="chromosome name", fix=fix, line_offset=first_line - 1)
    strand = np.asarray(strand, dtype=object)
    strand = np.where(pd.isna(strand), ".", strand)
    strand = np.where(strand == "?", ".", strand)
    bad = ~np.isin(strand, ["+", "-", "."])
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise InputError(path, f"strand is {strand[i]!r}, expected +, -, . or ?", fix, line=first_line + i)
    return pd.DataFrame(
        {
            "chrom": chrom,
            "start": start,
            "end": end,
            "strand": strand,
            "motif": np.asarray(motif, dtype=np.int8),
            "annotated": np.asarray(annotated, dtype=np.int8),
            "count": np.asarray(count, dtype=np.int64),
        }
    )


def _unreadable_text(path, err: Exception, fix: str) -> InputError:
    """The error for a text table that cannot be decoded (truncated gzip, binary, not UTF-8)."""
    return InputError(
        path,
        f"the file is truncated or not UTF-8 text ({type(err).__name__}: {err})",
        fix,
        line=first_bad_line(path),
    )


def read_cell_sheet(path: str | os.PathLike) -> pd.DataFrame:
    """Cell sheet of per-cell files: columns ``cell_id``, ``path`` (+ optional ``batch`` and others).

    Returns the sheet indexed by ``cell_id`` with absolute paths; checks duplicates and missing files.
    """
    path = require_file(path, "cell sheet")
    sep = "," if table_suffix(path) == ".csv" else "\t"
    fix = "write a TSV/CSV with a header line 'cell_id<TAB>path' (optional 'batch') and one row per cell"
    try:
        sheet = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise InputError(path, "the cell sheet is empty", fix, line=1) from None
    except pd.errors.ParserError as err:
        raise InputError(
            path, f"malformed cell sheet ({str(err).strip()})", fix, line=parser_error_line(err)
        ) from None
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
        raise _unreadable_text(path, err, fix) from None
    missing = {"cell_id", "path"} - set(sheet.columns)
    if missing:
        raise InputError(
            path, f"missing column(s) {sorted(missing)}; header is {list(sheet.columns)}", fix, line=1
        )
    if len(sheet) == 0:
        raise InputError(path, "the cell sheet lists no cells", fix, line=2)
    dup = sheet["cell_id"].duplicated().to_numpy()
    if dup.any():
        i = int(np.nonzero(dup)[0][0])
        raise InputError(
            path,
            f"cell_id {sheet['cell_id'].iloc[i]!r} listed twice",
            "give each cell a unique id",
            line=i + 2,
        )
    blank = (sheet["path"].str.strip() == "").to_numpy()
    if blank.any():
        i = int(np.nonzero(blank)[0][0])
        raise InputError(
            path,
            f"cell {sheet['cell_id'].iloc[i]!r} has an empty path",
            "give the junction file of every cell (relative paths are relative to the cell sheet)",
            line=i + 2,
        )
    base = Path(path).resolve().parent
    paths = [p if os.path.isabs(p) else str(base / p) for p in sheet["path"]]
    folders = np.array([os.path.isdir(p) for p in paths])
    if folders.any():
        i = int(np.nonzero(folders)[0][0])
        raise InputError(
            path,
            f"the path of cell {sheet['cell_id'].iloc[i]!r} is a folder: {paths[i]}",
            "give the junction file of each cell, not a folder",
            line=i + 2,
        )
    exists = np.array([os.path.exists(p) for p in paths])
    if not exists.all():
        i = int(np.nonzero(~exists)[0][0])
        raise InputError(
            path,
            f"file of cell {sheet['cell_id'].iloc[i]!r} not found: {paths[i]}",
            "fix the path (relative paths are relative to the cell sheet)",
            line=i + 2,
        )
    sheet["path"] = paths
    return sheet.set_index("cell_id")


def cell_sheet_from_dir(directory: str | os.PathLike, fmt: str) -> pd.DataFrame:
    """Cell sheet of a directory where each file is one cell (cell id = name without suffixes)."""
    directory = Path(directory)
    rows = []
    per_cell = {r.name: r.files_suffixes() for r in formats.JUNCTION_READERS.values() if r.per_cell}
    # Junction files of another format would be skipped without a word: refuse the mix instead.
    others = sorted(
        {s for f, suffixes in per_cell.items() if f != fmt for s in suffixes} - set(per_cell[fmt])
    )
    foreign = []
    for p in sorted(directory.iterdir()):
        name = p.name[:-3] if p.name.endswith(".gz") else p.name
        if fmt == "sj_out_tab" and name.endswith("ReadsPerGene.out.tab"):
            continue  # STAR's gene counts of the same cell, often in the same folder: not junctions
        for suffix in sorted(per_cell[fmt], key=len, reverse=True):
            if name.endswith(suffix) and p.is_file():
                rows.append((name[: -len(suffix)], str(p.resolve())))
                break
        else:
            if p.is_file() and name.endswith(tuple(others)):
                foreign.append(p.name)
    if not rows:
        raise InputError(
            directory,
            f"no {fmt} files ({', '.join(per_cell[fmt])}) in this directory",
            "point --junctions at the folder of per-cell files or pass --cell-sheet",
        )
    if foreign:
        raise InputError(
            directory,
            f"{len(rows)} {fmt} file(s) and {len(foreign)} junction file(s) of another format (e.g. {foreign[0]}), "
            f"which a {fmt} read would skip",
            "keep one format per folder, pass the matching --junction-format, or list the cells in a --cell-sheet",
        )
    return pd.DataFrame(rows, columns=["cell_id", "path"]).set_index("cell_id")


def read_per_cell(
    sheet: pd.DataFrame, fmt: str, progress: bool = True, multimappers: bool = False
) -> ad.AnnData:
    """Read per-cell junction files listed in a cell sheet into one AnnData.

    ``multimappers`` adds STAR's multi-mapping reads (``sj_out_tab`` only).
    """
    entry = formats.get_reader("junctions", fmt)
    if not entry.per_cell:
        per_cell = [r.name for r in formats.JUNCTION_READERS.values() if r.per_cell]
        raise ValueError(f"{fmt!r} is not a per-cell junction format; use one of {per_cell}")
    reader = (
        partial(entry.read, multimappers=True)
        if multimappers and "multimappers" in entry.options
        else entry.read
    )
    parts = []
    for code, path in enumerate(
        tqdm(sheet["path"].tolist(), desc=f"reading {fmt} files", unit="cell", disable=not progress)
    ):
        rec = reader(path)
        rec["cell"] = np.int32(code)
        parts.append(rec)
    records = pd.concat(parts, ignore_index=True)
    obs = sheet.drop(columns=["path"]).copy()
    obs["source_file"] = sheet["path"].to_numpy()
    return records_to_anndata(records, obs)


# --------------------------------------------------------------------------------------------
# STARsolo
# --------------------------------------------------------------------------------------------
def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (folder / n).exists():
            return folder / n
    return None


def find_starsolo_dir(path: str | os.PathLike, feature: str = "SJ", sub: str = "raw") -> Path:
    """The folder holding ``matrix.mtx`` of a STARsolo feature, from the run, Solo.out or feature path."""
    p = Path(require_file(path, f"STARsolo {feature} output"))
    for cand in (p, p / sub, p / feature / sub, p / "Solo.out" / feature / sub):
        if _first_existing(cand, ("matrix.mtx", "matrix.mtx.gz")):
            return cand
    raise InputError(
        p,
        f"no STARsolo {feature}/{sub}/matrix.mtx under this path",
        f"point to the STAR run folder, Solo.out, Solo.out/{feature} or Solo.out/{feature}/{sub}",
    )


def _starsolo_features(raw: Path) -> Path:
    """``features.tsv`` of STARsolo SJ output, or the run's ``SJ.out.tab`` when the link is broken."""
    feat = raw / "features.tsv"
    if feat.exists():
        return feat
    candidates = []
    if feat.is_symlink():  # broken link: try its target relative to raw/ and the usual run folder
        candidates.append(raw / os.readlink(feat))
    run_dir = raw.parent.parent.parent  # raw → SJ → Solo.out → run folder
    candidates += [run_dir / "SJ.out.tab", raw.parent.parent / "SJ.out.tab"]
    candidates += sorted(run_dir.glob("*SJ.out.tab"))
    for c in candidates:
        if c.exists():
            return c
    raise InputError(
        feat,
        "features.tsv is missing or a broken symlink (STARsolo links it to the run's SJ.out.tab)",
        f"copy the STAR run's SJ.out.tab to {run_dir / 'SJ.out.tab'} or to {feat}",
    )


def read_starsolo_sj(path: str | os.PathLike) -> ad.AnnData:
    """Read STARsolo SJ output (``Solo.out/SJ/raw``) into cells × junctions.

    Junction rows with no reads (common in STARsolo output) are kept in ``var``; they are removed by
    the ATSE filters.
    """
    raw = find_starsolo_dir(path, "SJ", "raw")
    feat_path = _starsolo_features(raw)
    bc_path = _first_existing(raw, ("barcodes.tsv", "barcodes.tsv.gz"))
    if bc_path is None:
        raise InputError(raw, "barcodes.tsv not found", "copy the complete Solo.out/SJ/raw folder")
    barcodes = read_barcodes(bc_path)
    fix = "features.tsv must be STAR's SJ.out.tab (9 tab-separated columns)"
    ints = dict.fromkeys(range(1, 9), np.int64)
    feat = read_typed(
        feat_path, {0: str, **ints}, what="STARsolo SJ features (SJ.out.tab)", fix=fix, count_cols=(6, 7)
    )
    mtx_path = _first_existing(raw, ("matrix.mtx", "matrix.mtx.gz"))
    mat = read_mtx(mtx_path, what="STARsolo SJ matrix.mtx")
    if mat.shape != (len(feat), len(barcodes)):
        raise InputError(
            mtx_path,
            f"matrix is {mat.shape[0]} × {mat.shape[1]} but features.tsv has {len(feat)} junctions and "
            f"barcodes.tsv {len(barcodes)} barcodes",
            "use the features.tsv / SJ.out.tab of the same STAR run as the matrix",
            line=getattr(mat, "size_line", None),
        )
    _check_range(feat[3].to_numpy(), 0, 2, feat_path, "column 4 (strand, 0/1/2)", fix)
    junctions = _records(
        feat_path,
        feat[0],
        feat[1],
        feat[2],
        _STAR_STRAND[feat[3].to_numpy()],
        feat[4],
        feat[5],
        np.zeros(len(feat), dtype=np.int64),
        fix,
        first_line=1,
    )
    # Junction identity is per feature row: merge the rows (empty ones stay), then map matrix rows.
    junctions, note = _harmonized(junctions)
    var, jkey = merge_records(junctions)
    obs = pd.DataFrame(index=pd.Index(barcodes, name="cell_id"))
    adata = _build_anndata(mat.col, jkey[mat.row], mat.data, obs, var)
    adata.uns["splicevi_ingest"] = {
        **adata.uns.get("splicevi_ingest", {}),
        **note,
        "features": str(feat_path),
    }
    return adata


def read_barcodes(path: str | os.PathLike) -> np.ndarray:
    """Barcodes (first column) of a ``barcodes.tsv[.gz]``, checked for duplicates."""
    fix = "one barcode per line (STARsolo / Cell Ranger barcodes.tsv)"
    df = read_delimited(path, (1, 2, 3), what="barcodes", fix=fix)
    bc = df[0].to_numpy(dtype=object)
    dup = pd.Series(bc).duplicated().to_numpy()
    if dup.any():
        i = int(np.nonzero(dup)[0][0])
        raise InputError(path, f"barcode {bc[i]!r} listed twice", fix, line=i + 1)
    return bc.astype(str)


# --------------------------------------------------------------------------------------------
# long table
# --------------------------------------------------------------------------------------------
_TABLE_ALIASES = {
    "cell_id": "cell",
    "barcode": "cell",
    "chr": "chrom",
    "chromosome": "chrom",
    "reads": "count",
    "counts": "count",
}


def read_junction_table(path: str | os.PathLike) -> ad.AnnData:
    """Read a long table ``cell, chrom, start, end, strand, count`` (TSV, CSV or Parquet)."""
    path = require_file(path, "junction table")
    fix = "provide a table with header cell, chrom, start, end, strand, count (1-based intron start/end)"
    suffix = table_suffix(path)
    if suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
        line_offset = 0  # parquet has rows, not lines: report row numbers (1-based)
    else:
        sep = "," if suffix == ".csv" else "\t"
        try:
            df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, compression="infer")
        except pd.errors.EmptyDataError:
            raise InputError(path, "the junction table is empty", fix, line=1) from None
        except pd.errors.ParserError as err:
            raise InputError(
                path,
                f"wrong number of columns ({str(err).split('C error: ')[-1].strip()})",
                fix,
                line=parser_error_line(err),
            ) from None
        except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:
            raise _unreadable_text(path, err, fix) from None
        line_offset = 1  # header line
        check_no_nul(path, what="junction table", fix=fix)
    df = df.rename(columns={c: _TABLE_ALIASES.get(c.lower(), c.lower()) for c in df.columns})
    missing = {"cell", "chrom", "start", "end", "strand", "count"} - set(df.columns)
    if missing:
        raise InputError(
            path, f"missing column(s) {sorted(missing)}; columns are {list(df.columns)}", fix, line=1
        )
    if len(df) == 0:
        raise InputError(path, "the junction table has no rows", fix, line=2)
    ints = {}
    for col in ("start", "end", "count"):
        s = df[col]
        if pd.api.types.is_integer_dtype(s) and not s.isna().any():  # Parquet integer columns
            ints[col] = s.to_numpy(dtype=np.int64)
            if col == "count":
                check_count_values(ints[col], path=path, field=col, fix=fix, line_offset=line_offset)
        else:
            ints[col] = integer_column(
                s.astype(str),
                path=path,
                field=col,
                fix=fix,
                line_offset=line_offset,
                allow_negative=col != "count",
                max_value=MAX_COUNT if col == "count" else None,
            )
    motif = df["motif"].to_numpy(dtype=np.int8) if "motif" in df else np.full(len(df), -1, dtype=np.int8)
    annotated = (
        df["annotated"].to_numpy(dtype=np.int8) if "annotated" in df else np.full(len(df), -1, np.int8)
    )
    rec = _records(
        path,
        df["chrom"].astype(str),
        ints["start"],
        ints["end"],
        df["strand"].astype(str).to_numpy(),
        motif,
        annotated,
        ints["count"],
        fix,
        first_line=line_offset + 1,
    )
    cell = df["cell"]
    if isinstance(cell.dtype, pd.CategoricalDtype):  # Parquet dictionary columns: reuse the codes
        cell = cell.cat.remove_unused_categories()
        cell_codes, cells = cell.cat.codes.to_numpy(), cell.cat.categories.astype(str)
    else:
        cell_codes, cells = pd.factorize(cell.astype(str), sort=False)
    rec["cell"] = cell_codes.astype(np.int32)
    obs = pd.DataFrame(index=pd.Index(np.asarray(cells, dtype=str), name="cell_id"))
    return records_to_anndata(rec, obs)


# --------------------------------------------------------------------------------------------
# records → AnnData
# --------------------------------------------------------------------------------------------
def merge_records(records: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Distinct junctions of per-record rows, resolving unknown strands.

    Parameters
    ----------
    records
        Columns ``chrom``, ``start``, ``end`` (1-based intron), ``strand``, ``motif``, ``annotated``.

    Returns
    -------
    var
        One row per junction (sorted by chrom, start, end, strand), index ``junction_id``.
    jkey
        Row of ``var`` of each record.
    """
    chrom = records["chrom"].astype("category")
    # Categories in sorted order so the junction order is (chrom, start, end, strand).
    chrom = chrom.cat.reorder_categories(sorted(chrom.cat.categories))
    intron = pd.DataFrame({"chrom": chrom.cat.codes, "start": records["start"], "end": records["end"]})
    ikey = intron.groupby(["chrom", "start", "end"], sort=True).ngroup().to_numpy()
    n_introns = int(ikey.max()) + 1 if len(ikey) else 0
    strand = records["strand"].to_numpy(dtype=object)
    motif = records["motif"].to_numpy(dtype=np.int8)
    # Strand of an intron: from its motif when known, else the single strand its records agree on.
    intron_motif = np.full(n_introns, -1, dtype=np.int16)
    np.maximum.at(intron_motif, ikey, motif.astype(np.int16))
    n_plus = np.bincount(ikey, weights=(strand == "+"), minlength=n_introns)
    n_minus = np.bincount(ikey, weights=(strand == "-"), minlength=n_introns)
    from_records = np.where(
        (n_plus > 0) & (n_minus == 0), "+", np.where((n_minus > 0) & (n_plus == 0), "-", ".")
    )
    from_motif = strand_from_motif(intron_motif)
    resolved = np.where(from_motif != ".", from_motif, from_records)
    strand = np.where(strand == ".", resolved[ikey], strand)

    # A junction is an intron on a strand: integer keys (sorted intron, then + - .) on the records.
    strand_code = np.select([strand == "+", strand == "-"], [0, 1], 2).astype(np.int64)
    combined, jkey = np.unique(ikey.astype(np.int64) * 3 + strand_code, return_inverse=True)
    jkey = jkey.ravel()
    n_junctions = len(combined)
    first = np.zeros(n_junctions, dtype=np.int64)
    first[jkey[::-1]] = np.arange(len(jkey))[::-1]  # a record of each junction (the first)
    var = pd.DataFrame(
        {
            "chrom": np.asarray(chrom.cat.categories, dtype=object)[chrom.cat.codes.to_numpy()[first]].astype(
                str
            ),
            "start": records["start"].to_numpy()[first],
            "end": records["end"].to_numpy()[first],
            "strand": np.array(["+", "-", "."])[combined % 3],
        }
    )
    jmotif = np.full(n_junctions, -1, dtype=np.int16)
    np.maximum.at(jmotif, jkey, motif.astype(np.int16))
    jann = np.full(n_junctions, -1, dtype=np.int16)
    np.maximum.at(jann, jkey, records["annotated"].to_numpy(dtype=np.int16))
    var["motif"] = jmotif.astype(np.int8)
    var["annotated"] = jann.astype(np.int8)
    var.index = pd.Index(junction_ids(var), name="junction_id")
    return var, jkey


def harmonize_chromosome_names(chrom: pd.Series) -> tuple[pd.Series, dict[str, str]]:
    """Give each chromosome one name when the input spells it both with and without ``chr``.

    Files of one run made with different references (``chr1`` in some cells, ``1`` in others) would
    otherwise turn one intron into two junctions. The spelling used by more records wins.

    Returns
    -------
    chrom
        The names, renamed where needed.
    renamed
        ``{old name: new name}`` (empty when nothing was renamed).
    """
    counts = chrom.value_counts()
    renamed = {}
    for name, n in counts.items():
        name = str(name)
        if name.startswith("chr") or f"chr{name}" not in counts.index:
            continue
        n_chr = counts[f"chr{name}"]
        old, new = (name, f"chr{name}") if n_chr >= n else (f"chr{name}", name)
        renamed[old] = new
    if renamed:
        chrom = chrom.astype(str).replace(renamed)
    return chrom, renamed


def _harmonized(records: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """``records`` with one spelling per chromosome, and the note for the ingest summary."""
    chrom, renamed = harmonize_chromosome_names(records["chrom"])
    if not renamed:
        return records, {}
    n_records = int(records["chrom"].isin(list(renamed)).sum())
    log.warning(
        "chromosome names spelt with and without 'chr'; renamed %s (%d records)",
        ", ".join(f"{a}→{b}" for a, b in sorted(renamed.items())),
        n_records,
    )
    records = records.copy()
    records["chrom"] = chrom.to_numpy()
    return records, {"chrom_renamed": dict(sorted(renamed.items())), "chrom_renamed_records": n_records}


def records_to_anndata(records: pd.DataFrame, obs: pd.DataFrame) -> ad.AnnData:
    """Merge per-(cell, junction) records into a cells × junctions CSR AnnData.

    Parameters
    ----------
    records
        Columns ``cell`` (row of ``obs``), ``chrom``, ``start``, ``end`` (1-based intron), ``strand``,
        ``motif``, ``annotated``, ``count``. Repeated (cell, junction) records are summed.
    obs
        One row per cell code, index = cell ids.
    """
    records, note = _harmonized(records)
    var, jkey = merge_records(records)
    adata = _build_anndata(records["cell"].to_numpy(), jkey, records["count"].to_numpy(), obs, var)
    adata.uns["splicevi_ingest"] = {**adata.uns.get("splicevi_ingest", {}), **note}
    return adata


def _build_anndata(
    cell: np.ndarray, jkey: np.ndarray, counts: np.ndarray, obs: pd.DataFrame, var: pd.DataFrame
) -> ad.AnnData:
    """Cells × junctions CSR (duplicates summed, zeros dropped) with per-junction and per-cell totals."""
    x = sp.csr_matrix((counts.astype(np.float32), (cell, jkey)), shape=(len(obs), len(var)))
    n_entries = len(cell)
    x.sum_duplicates()
    duplicates = {}
    if x.nnz < n_entries:  # the same junction listed more than once for a cell: summed, and reported
        pair = np.asarray(cell, dtype=np.int64) * len(var) + np.asarray(jkey, dtype=np.int64)
        uniq, n = np.unique(pair, return_counts=True)
        cells_dup = np.unique(uniq[n > 1] // len(var))
        duplicates = {
            "duplicate_records": int(n_entries - len(uniq)),
            "cells_with_duplicates": int(len(cells_dup)),
            "duplicate_example_cell": str(obs.index[cells_dup[0]]),
        }
        log.warning(
            "%d duplicate junction record(s) in %d cell(s) (e.g. %s) were summed",
            duplicates["duplicate_records"],
            len(cells_dup),
            duplicates["duplicate_example_cell"],
        )
    x.eliminate_zeros()
    var = var.copy()
    var["total_reads"] = count_totals(x, axis=0)
    var["n_cells"] = np.bincount(x.indices, minlength=len(var)).astype(np.int64)
    obs = obs.copy()
    obs.index = obs.index.astype(str)
    obs.index.name = "cell_id"
    obs["n_junction_reads"] = count_totals(x, axis=1)
    obs["n_junctions_detected"] = np.diff(x.indptr).astype(np.int64)
    adata = ad.AnnData(X=x, obs=obs, var=var)
    if duplicates:
        adata.uns["splicevi_ingest"] = duplicates
    return adata


def introns_on_both_strands(var: pd.DataFrame) -> tuple[int, str]:
    """Introns (chrom, start, end) listed with two or more strands: ``(count, an example id)``.

    The same coordinates on ``+`` and ``-`` (or on a strand and ``.``) are two junctions; an
    aligner's strand call from the motif or a stranded protocol can give both. They are kept apart
    (the strand filter of ``splicevi atse`` decides) but the summary notes them.
    """
    if var.empty:
        return 0, ""
    key = var["chrom"].astype(str) + ":" + var["start"].astype(str) + "-" + var["end"].astype(str)
    n_strands = key.groupby(key.to_numpy()).transform("size")
    multi = key[n_strands.to_numpy() > 1]
    if multi.empty:
        return 0, ""
    return int(multi.nunique()), str(multi.iloc[0])


def junction_ids(var: pd.DataFrame) -> np.ndarray:
    """``chrom:start-end:strand`` ids (1-based intron) of a junction table."""
    return (
        var["chrom"].astype(str)
        + ":"
        + var["start"].astype(str)
        + "-"
        + var["end"].astype(str)
        + ":"
        + var["strand"].astype(str)
    ).to_numpy()


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------
def detect_junction_format(path: str | os.PathLike) -> str:
    """Guess the junction format of a path from the registered formats (see :mod:`splicevi.data.formats`).

    A folder: a folder format (STARsolo), else the format of its per-cell files. A file: the format
    its name ends with; else a cell sheet (``cell_id``, ``path``) takes the format of its first
    file, and any other text table is a long ``table``.
    """
    p = Path(require_file(path, "junction input"))
    if p.is_dir():
        fmt = formats.format_of_folder("junctions", p)
        if fmt is None:
            per_cell = ", ".join(formats.format_choices("junctions")[1:])
            raise InputError(
                p, "cannot tell the junction format of this folder", f"pass --junction-format ({per_cell})"
            )
        return fmt
    fmt = formats.format_of_name("junctions", p.name)
    if fmt is not None:
        return fmt
    suffix = table_suffix(p)
    try:
        header = pd.read_csv(p, sep="," if suffix == ".csv" else "\t", nrows=5, dtype=str)
    except (ValueError, EOFError, OSError, zlib.error) as err:  # pandas' parser errors are ValueErrors
        raise InputError(
            p,
            f"cannot tell the junction format: not a readable table ({type(err).__name__})",
            "pass --junction-format, or check that the file is a complete text table",
        ) from None
    cols = {c.lower() for c in header.columns}
    if {"cell_id", "path"} <= cols:
        first = str(header["path"].iloc[0]) if len(header) else ""
        return detect_junction_format(first if os.path.isabs(first) else p.resolve().parent / first)
    return "table"


def read_junctions(
    path: str | os.PathLike,
    fmt: str = "auto",
    cell_sheet: str | os.PathLike | None = None,
    batch: str | None = None,
    progress: bool = True,
    multimappers: bool = False,
) -> ad.AnnData:
    """Read junction counts of any supported format into cells × junctions (see module docstring).

    Parameters
    ----------
    path
        STARsolo folder, long table, per-cell file, folder of per-cell files, or cell sheet.
    fmt
        ``auto`` or a registered junction format (:data:`splicevi.data.formats.JUNCTION_READERS`).
    cell_sheet
        Cell sheet (``cell_id``, ``path``) for per-cell formats (``path`` is then ignored when it is the sheet itself).
    batch
        Batch label for all cells (a ``batch`` column of the cell sheet wins).
    progress
        Show a progress bar over per-cell files.
    multimappers
        Count STAR's multi-mapping reads too (per-cell ``SJ.out.tab``).
    """
    if fmt != formats.AUTO:
        formats.get_reader("junctions", fmt)
    src = cell_sheet if cell_sheet is not None else path
    if fmt == formats.AUTO:
        fmt = detect_junction_format(src)
    entry = formats.get_reader("junctions", fmt)
    if not entry.per_cell:
        adata = entry.read(path)
    else:
        p = Path(require_file(src, "junction input"))
        if p.is_dir():
            sheet = cell_sheet_from_dir(p, fmt)
        elif (
            cell_sheet is not None
            or table_suffix(p) in (".tsv", ".csv", ".txt")
            and not p.name.endswith((".out.tab", ".out.tab.gz"))
        ):
            sheet = read_cell_sheet(p)
        else:  # a single per-cell file
            name = p.name.removesuffix(".gz")
            for suffix in entry.files_suffixes():
                name = name.removesuffix(suffix)
            sheet = pd.DataFrame({"path": [str(p.resolve())]}, index=pd.Index([name], name="cell_id"))
        adata = read_per_cell(sheet, fmt, progress=progress, multimappers=multimappers)
    if "batch" not in adata.obs:
        adata.obs["batch"] = batch if batch is not None else "batch0"
    adata.obs["batch"] = adata.obs["batch"].astype(str).astype("category")
    adata.uns["splicevi_ingest"] = {**adata.uns.get("splicevi_ingest", {}), "format": fmt, "input": str(src)}
    return adata


# --------------------------------------------------------------------------------------------
# the registry entries (detection tries them in this order)
# --------------------------------------------------------------------------------------------
def _is_starsolo(folder: Path) -> bool:
    try:
        find_starsolo_dir(folder, "SJ", "raw")
    except InputError:
        return False
    return True


formats.register_reader(
    "junctions",
    formats.Reader("starsolo", read_starsolo_sj, is_folder=_is_starsolo, help="STARsolo SJ output folder"),
)
formats.register_reader(
    "junctions",
    formats.Reader(
        "sj_out_tab",
        read_sj_out_tab_records,
        suffixes=(".out.tab",),
        per_cell=True,
        options=("multimappers",),
        help="STAR SJ.out.tab per cell",
    ),
)
formats.register_reader(
    "junctions",
    formats.Reader(
        "junc", read_junc_records, suffixes=(".junc",), per_cell=True, help="LeafCutter .junc per cell"
    ),
)
formats.register_reader(
    "junctions",
    formats.Reader(
        "regtools",
        read_regtools_records,
        suffixes=(".bed",),
        per_cell=True,
        cell_suffixes=(".bed", ".junc", ".junctions.bed"),
        help="regtools junctions extract BED12 per cell",
    ),
)
formats.register_reader(
    "junctions",
    formats.Reader(
        "table",
        read_junction_table,
        suffixes=(".parquet", ".pq"),
        help="long table cell, chrom, start, end, strand, count",
    ),
)
