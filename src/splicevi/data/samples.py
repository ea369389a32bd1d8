"""The cohort sample sheet: one row per sample (a 10x channel, a plate) with its input paths.

Columns
-------
``sample`` (required)
    Sample id: letters, digits, ``.`` and ``-`` (no ``_``: it separates the sample from the barcode in
    merged cell ids ``<sample>_<barcode>``, so the prefix can always be read back).
``junctions`` (required)
    Junction input of the sample, as for ``splicevi ingest --junctions``.
``junction_format``, ``cell_sheet``, ``genes``, ``gene_format``, ``barcodes`` (optional)
    As the ``splicevi ingest`` options of the same names (``cell_sheet`` is ``--sample-sheet``, the
    per-cell sheet of SJ.out.tab / .junc files). Empty cells mean "not given".

Every other column (donor, condition, batch, ...) is a free annotation copied to every cell of the
sample. Paths are relative to the working directory (where Snakemake runs), like the config's paths.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from .formats import format_choices

#: Allowed sample ids (also the Snakemake wildcard constraint).
SAMPLE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.-]*"
#: Columns that name inputs of ``splicevi ingest``; the rest are cell annotations.
INPUT_COLUMNS = ("junctions", "junction_format", "cell_sheet", "genes", "gene_format", "barcodes")
PATH_COLUMNS = ("junctions", "cell_sheet", "genes", "barcodes")
#: Separator between the sample id and the barcode in merged cell ids.
SEPARATOR = "_"


class SampleSheetError(ValueError):
    """A bad sample sheet; the message names the sheet, the row (file line) and the column."""


def _check_row_schema(row: dict, schema: dict, where: str) -> None:
    """Validate one sheet row (empty cells left out) against the row schema; the first problem is raised."""
    import jsonschema

    given = {k: v for k, v in row.items() if v}
    for err in jsonschema.Draft202012Validator(schema).iter_errors(given):
        column = err.path[0] if err.path else None
        if err.validator == "required":
            column = err.message.split("'")[1] if "'" in err.message else column
        allowed = f"; allowed: {', '.join(err.validator_value)}" if err.validator == "enum" else ""
        raise SampleSheetError(f"{where}, column '{column}': {err.message}{allowed}")


def read_cohort_sheet(
    path: str | os.PathLike, check_paths: bool = True, schema: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Read and validate a sample sheet.

    Parameters
    ----------
    path
        TSV (or ``.csv``) file with a header line.
    check_paths
        Check that every path column names an existing file or folder.
    schema
        Optional JSON schema of one row (the workflow passes ``workflow/schemas/samples.schema.yaml``):
        each row, empty cells left out, is validated against it (formats, id pattern, required columns).

    Returns
    -------
    The sheet indexed by ``sample`` (str columns; empty cells as ``None``), in file order.

    Raises
    ------
    SampleSheetError
        Naming the sheet, the line and the column of the first problem, and the fix.
    """
    path = str(path)
    sep = "," if path.endswith(".csv") else "\t"
    try:
        sheet = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SampleSheetError(f"{path}: sample sheet not found") from None
    except (ValueError, OSError) as err:
        raise SampleSheetError(f"{path}: cannot read the sample sheet ({err})") from None
    sheet.columns = [c.strip() for c in sheet.columns]
    for col in ("sample", "junctions"):
        if col not in sheet.columns:
            raise SampleSheetError(
                f"{path}, line 1: no '{col}' column (columns: {', '.join(sheet.columns)}); "
                "fix: a tab-separated header with at least 'sample' and 'junctions'"
            )
    if sheet.empty:
        raise SampleSheetError(f"{path}: no sample rows; fix: add one row per sample")
    sheet = sheet.apply(lambda c: c.str.strip())
    row_schema = None
    if schema is not None:
        import yaml

        with open(schema) as fh:
            row_schema = yaml.safe_load(fh)
        # The format choices are the registered readers', not a copy in the schema.
        for column, kind in (("junction_format", "junctions"), ("gene_format", "genes")):
            if column in row_schema.get("properties", {}):
                row_schema["properties"][column]["enum"] = list(format_choices(kind))
    seen: dict[str, int] = {}
    for i in range(2, len(sheet) + 2):  # file line; line 1 is the header
        sample = sheet.iloc[i - 2]["sample"]
        where = f"{path}, line {i}"
        if not re.fullmatch(SAMPLE_ID_PATTERN, sample or ""):
            raise SampleSheetError(
                f"{where}, column 'sample': id {sample!r} is not allowed; fix: use letters, digits, "
                f"'.' and '-' only, starting with a letter or digit (no '_': it separates the "
                f"sample from the barcode in cell ids)"
            )
        if sample in seen:
            raise SampleSheetError(
                f"{where}, column 'sample': duplicate sample id '{sample}' (also on line "
                f"{seen[sample]}); fix: give every sample its own id"
            )
        seen[sample] = i
        for col in PATH_COLUMNS:
            value = sheet.iloc[i - 2].get(col, "")
            if col == "junctions" and not value:
                raise SampleSheetError(
                    f"{where}, column 'junctions': empty; fix: the sample's junction input"
                )
            if value and check_paths and not Path(value).exists():
                raise SampleSheetError(
                    f"{where}, column '{col}': path not found: '{value}' (paths are relative "
                    f"to the working directory {os.getcwd()})"
                )
        # after the checks above, whose messages say more about the id and the paths
        if row_schema is not None:
            _check_row_schema(sheet.iloc[i - 2].to_dict(), row_schema, where)
    sheet = sheet.set_index("sample", drop=False)
    sheet.index.name = None
    return sheet.where(sheet != "", None)


def annotation_columns(sheet: pd.DataFrame) -> list[str]:
    """The sheet's free columns (annotations copied to the cells), in sheet order."""
    return [c for c in sheet.columns if c not in ("sample", *INPUT_COLUMNS)]


def cell_ids(sample: str, barcodes) -> list[str]:
    """Merged cell ids ``<sample>_<barcode>`` (applied to every sample, even when there is one)."""
    return [f"{sample}{SEPARATOR}{b}" for b in barcodes]
