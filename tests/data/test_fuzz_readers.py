"""Fuzzing of the junction readers: ~200 damaged variants of a valid file per reader.

Damage: truncation, byte flips, dropped or added columns, other encodings (UTF-16, BOM, Latin-1, CRLF),
NUL bytes, quotes, garbage lines, spaces for tabs, gzip (whole or cut short). For every variant the
reader must either raise :class:`InputError` naming the damaged file, or read it correctly: then the
reads in the result equal those of an independent, strict parse of the same bytes. Through
``splicevi ingest`` a failure must exit with the data-error status and leave no output or temporary
file behind.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_fixtures import junc_line, regtools_line, sj_line, write_text
from splicevi.cli.main import main
from splicevi.data._tables import InputError
from splicevi.data.readers_junctions import read_junctions

N_VARIANTS = 200
N_CLI = 20  # of them, also run through `splicevi ingest` (the output check)


# --- valid inputs -----------------------------------------------------------------------------------
def _introns(rng: np.random.Generator, n: int = 25):
    starts = np.sort(rng.choice(np.arange(1000, 90_000, 100), n, replace=False))
    return [
        (f"chr{1 + i % 3}", int(s), int(s + rng.integers(80, 5000)), int(rng.integers(1, 60)))
        for i, s in enumerate(starts)
    ]


def _valid(fmt: str, folder: Path, rng: np.random.Generator) -> Path:
    """A valid input of ``fmt`` in ``folder``; returns the file to damage."""
    introns = _introns(rng)
    if fmt == "sj_out_tab":
        return write_text(folder / "cellSJ.out.tab", [sj_line(c, s, e, unique=k) for c, s, e, k in introns])
    if fmt == "junc":
        return write_text(folder / "cell.junc", [junc_line(c, s, e, count=k) for c, s, e, k in introns])
    if fmt == "regtools":
        return write_text(folder / "cell.bed", [regtools_line(c, s, e, count=k) for c, s, e, k in introns])
    if fmt == "table":
        rows = [f"c{i % 4}\t{c}\t{s}\t{e}\t+\t{k}" for i, (c, s, e, k) in enumerate(introns)]
        return write_text(folder / "junctions.tsv", ["cell\tchrom\tstart\tend\tstrand\tcount", *rows])
    raw = folder / "Solo.out" / "SJ" / "raw"  # starsolo: damage one of its three files
    write_text(raw / "features.tsv", [sj_line(c, s, e, unique=k) for c, s, e, k in introns])
    barcodes = [f"BC{i:03d}" for i in range(6)]
    write_text(raw / "barcodes.tsv", barcodes)
    entries = [
        (j + 1, int(b) + 1, int(rng.integers(1, 9)))
        for j in range(len(introns))
        for b in rng.choice(len(barcodes), 2, replace=False)
    ]
    write_text(
        raw / "matrix.mtx",
        [
            "%%MatrixMarket matrix coordinate integer general",
            "%",
            f"{len(introns)} {len(barcodes)} {len(entries)}",
            *[f"{j} {b} {v}" for j, b, v in entries],
        ],
    )
    return raw / str(rng.choice(["matrix.mtx", "features.tsv", "barcodes.tsv"]))


# --- damage -------------------------------------------------------------------------------------------
def _damage(data: bytes, rng: np.random.Generator) -> tuple[str, bytes, bool]:
    """(kind, damaged bytes, gzip it?) for one random kind of damage."""
    lines = data.split(b"\n")
    kind = str(
        rng.choice(
            [
                "truncate",
                "flip",
                "flip_digit",
                "drop_column",
                "add_column",
                "utf16",
                "bom",
                "latin1",
                "crlf",
                "nul",
                "quote",
                "garbage_line",
                "spaces",
                "blank_line",
                "gzip",
                "gzip_cut",
                "empty",
                "shuffle",
            ]
        )
    )
    i = int(rng.integers(0, max(len(lines) - 1, 1)))
    if kind == "truncate":
        out = data[: int(rng.integers(0, len(data)))]
    elif kind in ("flip", "flip_digit"):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), int(rng.integers(1, 4))):
            buf[pos] = int(rng.integers(48, 58)) if kind == "flip_digit" else int(rng.integers(0, 256))
        out = bytes(buf)
    elif kind == "drop_column":
        fields = lines[i].split(b"\t")
        del fields[int(rng.integers(0, len(fields)))]
        lines[i] = b"\t".join(fields)
        out = b"\n".join(lines)
    elif kind == "add_column":
        lines[i] = lines[i] + b"\t7"
        out = b"\n".join(lines)
    elif kind == "utf16":
        out = data.decode("latin-1").encode("utf-16")
    elif kind == "bom":
        out = b"\xef\xbb\xbf" + data
    elif kind == "latin1":
        out = data.replace(b"chr", "chré".encode("latin-1"), 1)
    elif kind == "crlf":
        out = data.replace(b"\n", b"\r\n")
    elif kind == "nul":
        pos = int(rng.integers(0, len(data)))
        out = data[:pos] + b"\x00" + data[pos:]
    elif kind == "quote":
        pos = int(rng.integers(0, len(data)))
        out = data[:pos] + b'"' + data[pos:]
    elif kind == "garbage_line":
        lines.insert(i, bytes(rng.integers(32, 127, int(rng.integers(1, 40))).astype(np.uint8)))
        out = b"\n".join(lines)
    elif kind == "spaces":
        lines[i] = lines[i].replace(b"\t", b" ")
        out = b"\n".join(lines)
    elif kind == "blank_line":
        lines.insert(i, b"")
        out = b"\n".join(lines)
    elif kind in ("gzip", "gzip_cut"):
        packed = gzip.compress(data, mtime=0)
        return kind, packed if kind == "gzip" else packed[: int(rng.integers(1, len(packed)))], True
    elif kind == "empty":
        out = b""
    else:  # shuffle the data lines: still a valid file
        body = [line for line in lines if line]
        head = (
            body[:3] if body and body[0].startswith(b"%%") else body[:1] if b"cell\tchrom" in body[0] else []
        )
        rest = body[len(head) :]
        out = b"\n".join(head + [rest[j] for j in rng.permutation(len(rest))]) + b"\n"
    return kind, out, False


# --- an independent strict parse (what a correct read must agree with) --------------------------------
_INT = re.compile(r"[0-9]+")


def _rows(data: bytes, n_fields: int, skip: int = 0) -> list[list[str]] | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n") and text:
        text += "\n"
    lines = text.split("\n")[:-1]
    if any(line.endswith("\r") for line in lines):
        lines = [line.removesuffix("\r") for line in lines]
    rows = [line.split("\t") for line in lines[skip:]]
    if not rows or any(len(r) != n_fields or "" in r for r in rows):
        return None
    return rows


def _expected_reads(fmt: str, target: Path, data: bytes) -> int | None:
    """Total reads of the damaged input by a strict parse; None when it is not a valid file."""
    if fmt == "table":
        return _expected_table_reads(data)
    if fmt in ("sj_out_tab", "junc", "regtools"):
        n_fields, skip, count_col = {"sj_out_tab": (9, 0, 6), "junc": (6, 0, 4), "regtools": (12, 0, 4)}[fmt]
        rows = _rows(data, n_fields, skip)
        if rows is None:
            return None
        int_cols = {"sj_out_tab": range(1, 9), "junc": (1, 2, 4), "regtools": (1, 2, 4, 6, 7, 9)}[fmt]
        if not all(_INT.fullmatch(r[c]) for r in rows for c in int_cols):
            return None
        return sum(int(r[count_col]) for r in rows)
    return None


def _expected_table_reads(data: bytes) -> int | None:
    """A long table as a table reader may read it: a UTF-8 BOM, blank lines, extra header columns are fine."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return None
    header = lines[0].split("\t")
    if header[:6] != ["cell", "chrom", "start", "end", "strand", "count"]:
        return None
    rows = [line.split("\t") for line in lines[1:]]
    if not rows or any(not 6 <= len(r) <= len(header) or "" in r[:6] for r in rows):
        return None
    if not all(_INT.fullmatch(r[c]) for r in rows for c in (2, 3, 5)):
        return None
    return sum(int(r[5]) for r in rows)


def _decompressed(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (EOFError, OSError):
        return None


def _consistent(fmt: str, adata, expected: int | None) -> bool:
    """A read is correct when its reads equal the strict parse's.

    A file the strict parse rejects must not be read at all (starsolo: the three files together,
    only checked for a sane result).
    """
    total = int(adata.X.sum())
    if fmt != "starsolo":
        return expected is not None and total == expected
    return adata.n_obs > 0 and adata.n_vars > 0 and total >= 0


def _damaged_variant(folder: Path, fmt: str, rng):
    """Write a valid ``fmt`` input into ``folder`` and damage it in place (gzipped when the damage says).

    Returns the folder, the damaged file, the kind of damage, the damaged bytes and whether they are gzip.
    """
    folder.mkdir()
    target = _valid(fmt, folder, rng)
    kind, damaged, gz = _damage(target.read_bytes(), rng)
    if gz and fmt != "starsolo":
        target.unlink()
        target = target.with_name(target.name + ".gz")
    target.write_bytes(damaged)
    return folder, target, kind, damaged, gz


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["sj_out_tab", "junc", "regtools", "table", "starsolo"])
def test_damaged_inputs_fail_cleanly_or_read_correctly(tmp_path, fmt):
    rng = np.random.default_rng(["sj_out_tab", "junc", "regtools", "table", "starsolo"].index(fmt) + 100)
    outcomes: dict[str, int] = {}
    for v in range(N_VARIANTS):
        folder, target, kind, damaged, gz = _damaged_variant(tmp_path / f"v{v}", fmt, rng)
        source = folder if fmt == "starsolo" else target
        try:
            adata = read_junctions(source, fmt, progress=False)
        except InputError as err:
            assert str(err).startswith(str(target if fmt != "starsolo" else folder)) or str(target) in str(
                err
            ), (kind, str(err))
            assert "Fix:" in str(err), (kind, str(err))
            assert err.line is not None and f", line {err.line}:" in str(err), (
                kind,
                "no line named",
                str(err),
            )
            outcomes["error"] = outcomes.get("error", 0) + 1
        else:
            plain = _decompressed(damaged) if gz else damaged
            assert plain is not None or fmt == "starsolo", (kind, "a cut gzip file was read as if complete")
            expected = None if plain is None or fmt == "starsolo" else _expected_reads(fmt, target, plain)
            assert _consistent(fmt, adata, expected), (kind, v, int(adata.X.sum()), expected)
            outcomes["read"] = outcomes.get("read", 0) + 1
        if v < N_CLI:
            _check_cli(folder, source, fmt)
        shutil.rmtree(folder)
    # the damage is real: most variants are refused, and some (shuffles, harmless flips) still read
    assert outcomes.get("error", 0) > N_VARIANTS // 3 and outcomes.get("read", 0) > 5, outcomes


def _check_cli(folder: Path, source: Path, fmt: str) -> None:
    out = folder / "out"
    out.mkdir()
    rc = main(
        [
            "ingest",
            "--junctions",
            str(source),
            "--junction-format",
            fmt,
            "--out-junctions",
            str(out / "junctions.h5ad"),
            "--no-progress",
        ]
    )
    assert rc in (0, 3), rc
    left = sorted(p.name for p in out.iterdir())
    assert left == (["junctions.h5ad"] if rc == 0 else []), (rc, left)


@pytest.mark.parametrize("fmt", ["sj_out_tab", "junc", "regtools", "table", "starsolo"])
def test_every_fuzzed_data_error_names_its_line(tmp_path, fmt):
    """Fast version of the fuzz above: every refused variant names the file and the line."""
    rng = np.random.default_rng(["sj_out_tab", "junc", "regtools", "table", "starsolo"].index(fmt) + 7)
    n_errors = 0
    for v in range(40):
        folder, target, kind, damaged, gz = _damaged_variant(tmp_path / f"v{v}", fmt, rng)
        try:
            read_junctions(folder if fmt == "starsolo" else target, fmt, progress=False)
        except InputError as err:
            n_errors += 1
            assert err.line is not None and f", line {err.line}:" in str(err), (kind, str(err))
        shutil.rmtree(folder)
    assert n_errors > 10


# ---------------------------------------------------------------- counts: range, format, exact totals

_SJ_FIX = "STAR SJ.out.tab"


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        ("9223372036854775808", "too large"),  # beyond int64: used to wrap around to a negative count
        ("9223372036854775807", "too large"),
        ("16777217", "above the largest count stored exactly (16,777,216"),  # float32 would store 16,777,216
        ("1e3", "not an integer"),  # exponent notation: SJ.out.tab has none
    ],
)
def test_bad_counts_of_per_cell_formats_name_the_line(tmp_path, count, problem):
    for fmt, line in (
        ("sj_out_tab", sj_line("chr1", 300, 400, unique=count)),
        ("junc", junc_line("chr1", 300, 400, count=count)),
        ("regtools", regtools_line("chr1", 300, 400, count=count)),
    ):
        good = {"sj_out_tab": sj_line, "junc": junc_line, "regtools": regtools_line}[fmt]("chr1", 100, 200)
        path = write_text(tmp_path / f"cell.{fmt}", [good, line, good.replace("chr1", "chr2")])
        with pytest.raises(InputError, match=r", line 2: .*" + re.escape(problem)) as info:
            read_junctions(path, fmt, progress=False)
        assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("count", "problem"),
    [
        ("1e20", "not an integer"),
        ("1e3", "not an integer"),
        ("9300000000000000000", "too large"),
        ("16777217", "above the largest count"),
    ],
)
def test_bad_counts_of_the_long_table_name_the_line(tmp_path, count, problem):
    path = write_text(
        tmp_path / "j.tsv",
        [
            "cell\tchrom\tstart\tend\tstrand\tcount",
            "c1\tchr1\t100\t200\t+\t4",
            f"c2\tchr1\t100\t200\t+\t{count}",
        ],
    )
    with pytest.raises(InputError, match=r"j\.tsv, line 3: count .*" + re.escape(problem)):
        read_junctions(path, "table", progress=False)


def test_real_matrix_market_with_inf_or_huge_values_is_refused(tmp_path):
    from splicevi.data._mtx import read_mtx

    head = ["%%MatrixMarket matrix coordinate real general", "%", "2 2 2", "1 1 3"]
    for value, problem in (
        ("inf", "is inf, not a count"),
        ("1e20", "above the largest count"),
        ("2.5", "not an integer"),
        ("-1", "negative"),
    ):
        path = write_text(tmp_path / "m.mtx", [*head, f"2 2 {value}"])
        with pytest.raises(InputError, match=r"m\.mtx, line 5: .*" + re.escape(problem)):
            read_mtx(path)
    path = write_text(tmp_path / "m.mtx", [*head, "2 2 1e3"])  # a real file may write 1000 so
    assert read_mtx(path).toarray()[1, 1] == 1000


def test_largest_count_and_totals_are_exact(tmp_path):
    """16,777,216 is kept; totals over cells (16,777,217 here) are exact int64, not float32 sums."""
    path = write_text(
        tmp_path / "j.tsv",
        [
            "cell\tchrom\tstart\tend\tstrand\tcount",
            "c1\tchr1\t100\t200\t+\t16777216",
            "c2\tchr1\t100\t200\t+\t1",
            "c3\tchr1\t100\t200\t+\t1",
        ],
    )
    adata = read_junctions(path, "table", progress=False)
    assert adata.X.toarray()[:, 0].tolist() == [16777216, 1, 1]
    assert adata.var["total_reads"].iloc[0] == 16777218
    out = tmp_path / "j.h5ad"
    assert main(["ingest", "--junctions", str(path), "--out-junctions", str(out), "--no-progress"]) == 0
    import anndata as ad

    assert ad.read_h5ad(out).var["total_reads"].iloc[0] == 16777218


# ---------------------------------------------------------------- formats without quoting


def test_stray_quote_does_not_merge_lines(tmp_path):
    """.junc / SJ.out.tab have no quoting: a `"` in a free-text field is a character, not a quote."""
    lines = [junc_line("chr1", 100 * i, 100 * i + 50, count=i) for i in range(1, 6)]
    lines[1] = lines[1].replace("\t.\t", '\t"odd name\t')  # the name column
    path = write_text(tmp_path / "cell.junc", lines)
    adata = read_junctions(path, "junc", progress=False)
    assert adata.n_vars == 5 and int(adata.X.sum()) == 15


@pytest.mark.parametrize("bad", ['chr"1', "chr1\x0b", "ch\x01r1", "chr'1"])
def test_quote_or_control_character_in_a_chromosome_names_the_line(tmp_path, bad):
    for fmt, make in (("sj_out_tab", sj_line), ("junc", junc_line), ("regtools", regtools_line)):
        lines = [make("chr1", 100, 200), make(bad, 300, 400), make("chr1", 500, 600)]
        path = write_text(tmp_path / f"c.{fmt}", lines)
        with pytest.raises(
            InputError, match=r", line 2: chromosome name .* holds a quote or a control character"
        ):
            read_junctions(path, fmt, progress=False)
