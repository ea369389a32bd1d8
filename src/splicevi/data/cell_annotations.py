"""A per-cell annotation table for a cohort: cell types, conditions, ... joined to merged cell ids.

A cohort's cell ids are ``<sample>_<barcode>`` (:mod:`splicevi.data.samples`). The table names its
cells either by that id in its first column, or by two columns ``sample`` and ``barcode`` (the form
most labs already have: one row per barcode of each channel). Its other columns become cell
annotations, usable in contrasts and UMAP colours like the sample sheet's columns.
"""

from __future__ import annotations

import os

import pandas as pd

from .samples import cell_ids


class CellTableError(ValueError):
    """A cell annotation table that cannot be joined; the message names the file and the fix."""


def read_cell_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a cohort cell annotation table, indexed by merged cell id ``<sample>_<barcode>``.

    Parameters
    ----------
    path
        TSV (or ``.csv``) with a header line: either columns ``sample`` and ``barcode``, or the cell id
        in the first column.

    Returns
    -------
    The annotation columns (as str; empty cells as missing), indexed by cell id.

    Raises
    ------
    CellTableError
        For a duplicated cell (naming the file line) or an unreadable file.
    """
    path = str(path)
    sep = "," if path.endswith(".csv") else "\t"
    try:
        table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError) as err:
        raise CellTableError(f"{path}: cannot read the cell annotation table ({err})") from None
    if {"sample", "barcode"} <= set(table.columns):
        ids = pd.Index(cell_ids_of(table["sample"], table["barcode"]))
        table = table.drop(columns=["sample", "barcode"])
    else:
        ids = pd.Index(table.iloc[:, 0].astype(str))
        table = table.iloc[:, 1:]
    if ids.has_duplicates:
        pos = int(ids.duplicated().argmax())
        raise CellTableError(f"{path}, line {pos + 2}: cell '{ids[pos]}' occurs twice; give one row per cell")
    table.index = ids.rename("cell_id")
    return table


def cell_ids_of(samples: pd.Series, barcodes: pd.Series) -> list[str]:
    """Merged cell ids from a ``sample`` and a ``barcode`` column (row by row)."""
    return [cell_ids(s, [b])[0] for s, b in zip(samples.astype(str), barcodes.astype(str), strict=True)]


def join_cell_table(obs: pd.DataFrame, table: pd.DataFrame, path: str) -> tuple[pd.DataFrame, dict]:
    """Add the table's columns to the cohort's cell annotations.

    Parameters
    ----------
    obs
        The merged cells' annotations (sample, batch, sheet columns), indexed by cell id.
    table
        :func:`read_cell_table`'s result.
    path
        The table's file, for messages.

    Returns
    -------
    annotations, counts
        ``obs`` with the table's columns (cells the table lacks: missing, i.e. in no group of a
        contrast on them); ``counts`` holds ``matched``, ``cells`` and ``table_rows``.

    Raises
    ------
    CellTableError
        When no cell matches (with ids of both sides) or a column repeats a sample-sheet column.
    """
    clash = [c for c in table.columns if c in obs.columns]
    if clash:
        raise CellTableError(
            f"{path}: column(s) {', '.join(clash)} are already cell annotations from the sample sheet; "
            "rename them in the table (or drop them from the sheet)"
        )
    matched = obs.index.intersection(table.index)
    if len(matched) == 0:
        raise CellTableError(
            f"{path}: no cell of the table is in the cohort (table ids e.g. {list(table.index[:3])}, cohort ids "
            f"e.g. {list(obs.index[:3])}); use ids <sample>_<barcode> or columns 'sample' and 'barcode'"
        )
    out = obs.copy()
    for col in table.columns:
        out[col] = table[col].reindex(out.index)
    return out, {"matched": len(matched), "cells": len(obs), "table_rows": len(table)}
