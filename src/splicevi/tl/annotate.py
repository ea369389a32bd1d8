"""Feature annotations joined onto differential tables: coordinates, genes, annotation status.

The model's differential tables name a junction by its id (``chrom:start-end:strand``) and an ATSE by
its ``event_id``. People filter on coordinates and genes, so the ``splicevi ds`` / ``de`` writers add
columns taken from ``mdata["splicing"].var`` / ``mdata["rna"].var`` (the data contract), and give
the call and probability columns one naming scheme for DS and DE (see :data:`CALL_COLUMNS`).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .._constants import EVENT_ID_COLUMN

#: Columns added to every per-junction DS table, in this order (after the id).
JUNCTION_COLUMNS = ("chrom", "start", "end", "strand", "gene_id", "gene_name", "annotated")
#: Columns added to every per-ATSE DS table (``start``/``end``: span of the ATSE's introns).
EVENT_COLUMNS = ("chrom", "start", "end", "strand", "gene_id", "gene_name", "annotated", "n_annotated")
#: (probability, call) column of each kind of test; the FDR target is a parameter of the run.
CALL_COLUMNS = {"ds": ("proba_ds", "is_ds_fdr"), "de": ("proba_de", "is_de_fdr")}

_JUNCTION_ID = re.compile(r"^(?P<chrom>.+):(?P<start>\d+)-(?P<end>\d+):(?P<strand>[+\-.])$")


def junction_coordinates(var: pd.DataFrame) -> pd.DataFrame:
    """``chrom, start, end, strand, gene_id, gene_name, annotated`` of each junction of ``var``.

    Columns missing from ``var`` are derived from the index (coordinates; 1-based intron, as the ids)
    or left empty (gene and annotation status: e.g. no GTF was given).

    Raises
    ------
    ValueError
        If coordinates are missing from ``var`` and an id does not have the form ``chrom:start-end:strand``.
    """
    out = pd.DataFrame(index=pd.Index(var.index.astype(str), name="junction_id"))
    if not {"chrom", "start", "end", "strand"} <= set(var.columns):
        parts = out.index.to_series().str.extract(_JUNCTION_ID)
        bad = parts["chrom"].isna()
        if bad.any():
            raise ValueError(
                f"splicing var has no chrom/start/end/strand columns and junction id '{out.index[bad][0]}' "
                "is not of the form chrom:start-end:strand; re-run `splicevi ingest`"
            )
        for col in ("chrom", "start", "end", "strand"):
            var = var.assign(**{col: parts[col].to_numpy()}) if col not in var.columns else var
    for col in JUNCTION_COLUMNS:
        out[col] = var[col].to_numpy() if col in var.columns else pd.NA
    out["chrom"] = out["chrom"].astype(str)
    out["strand"] = out["strand"].astype(str)
    out["start"] = pd.to_numeric(out["start"]).astype(np.int64)
    out["end"] = pd.to_numeric(out["end"]).astype(np.int64)
    out["annotated"] = _as_boolean(out["annotated"])
    return out


def event_coordinates(var: pd.DataFrame) -> pd.DataFrame:
    """Per ATSE: chromosome, strand, span of its introns, genes and annotation status.

    ``annotated`` is True when every junction of the ATSE is annotated (False as soon as one is
    novel; empty when the status is unknown); ``n_annotated`` counts the annotated junctions. Gene
    ids and names of an ATSE that overlaps several genes are joined with ``,``.
    """
    if EVENT_ID_COLUMN not in var.columns:
        raise ValueError("splicing var has no 'event_id' column (run `splicevi atse` / `assemble`)")
    coords = junction_coordinates(var)
    coords[EVENT_ID_COLUMN] = var[EVENT_ID_COLUMN].astype(str).to_numpy()
    grouped = coords.groupby(EVENT_ID_COLUMN, sort=False)
    known = coords["annotated"].notna()
    out = pd.DataFrame(
        {
            "chrom": grouped["chrom"].first(),
            "start": grouped["start"].min(),
            "end": grouped["end"].max(),
            "strand": grouped["strand"].first(),
            "gene_id": grouped["gene_id"].agg(_join_unique),
            "gene_name": grouped["gene_name"].agg(_join_unique),
        }
    )
    n_annotated = (
        coords.assign(a=coords["annotated"].fillna(False).astype(bool))
        .groupby(EVENT_ID_COLUMN, sort=False)["a"]
        .sum()
    )
    all_known = known.groupby(coords[EVENT_ID_COLUMN], sort=False).all()
    size = grouped.size()
    out["annotated"] = pd.array(np.where(all_known, n_annotated == size, pd.NA), dtype="boolean")
    out["n_annotated"] = pd.array(np.where(all_known, n_annotated, pd.NA), dtype="Int64")
    out.index.name = EVENT_ID_COLUMN
    return out


#: Columns that describe the comparison; they lead every table.
CONTRAST_COLUMNS = ("contrast", "groupby", "group1", "group2")


def annotate_table(table: pd.DataFrame, annotations: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """Join the columns of ``annotations`` (indexed by feature id) onto ``table``.

    Column order: the contrast columns, ``id_col``, the annotations, ``event_id`` (per-junction
    tables), then the statistics in the model's order. Columns of ``table`` with an annotation's name
    are replaced (the data's annotation is the reference); a feature id absent from ``annotations``
    is an error, since the table and the data disagree.
    """
    if id_col not in table.columns:
        raise ValueError(f"table has no '{id_col}' column")
    ids = table[id_col].astype(str)
    missing = ~ids.isin(annotations.index)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} {id_col}(s) of the table are not in the data, e.g. '{ids[missing].iloc[0]}'"
        )
    joined = annotations.reindex(ids.to_numpy()).reset_index(drop=True)
    table = table.drop(columns=[c for c in annotations.columns if c in table.columns]).reset_index(drop=True)
    for col in annotations.columns:
        table[col] = joined[col].to_numpy()
    lead = [c for c in CONTRAST_COLUMNS if c in table.columns] + [id_col, *annotations.columns]
    if id_col != EVENT_ID_COLUMN and EVENT_ID_COLUMN in table.columns:
        lead.append(EVENT_ID_COLUMN)
    return table[lead + [c for c in table.columns if c not in lead]]


def gene_annotations(var: pd.DataFrame) -> pd.DataFrame:
    """``gene_name`` of each gene of ``mdata["rna"].var`` (the id when the data has no names)."""
    names = (
        var["gene_name"].astype(object) if "gene_name" in var.columns else pd.Series(pd.NA, index=var.index)
    )
    names = names.where(names.notna(), pd.Series(var.index, index=var.index))
    return pd.DataFrame(
        {"gene_name": names.astype(str).to_numpy()}, index=pd.Index(var.index.astype(str), name="gene_id")
    )


def rename_call_columns(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Give the FDR call column the common name (``is_ds_fdr`` / ``is_de_fdr``).

    scvi-tools names its DE call ``is_de_fdr_<target>``; the target is a run parameter (kept in
    the log and the report), so the column name does not carry it.
    """
    _, call = CALL_COLUMNS[kind]
    variants = [c for c in table.columns if str(c).startswith(f"{call}_")]
    if call in table.columns or not variants:
        return table.drop(columns=variants) if call in table.columns else table
    if len(variants) > 1:
        raise ValueError(f"table has several FDR call columns {variants}; expected one")
    return table.rename(columns={variants[0]: call})


def _join_unique(values: pd.Series):
    vals = [str(v) for v in pd.unique(values.dropna())]
    return ",".join(vals) if vals else pd.NA


def _as_boolean(values: pd.Series) -> pd.arrays.BooleanArray:
    """Annotation flags of any input encoding (bool, 0/1, "True"/"False") as a nullable boolean."""
    mapping = {"true": True, "1": True, "false": False, "0": False, "yes": True, "no": False}
    out = [
        pd.NA
        if v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v))
        else mapping.get(str(v).strip().lower(), pd.NA)
        for v in values
    ]
    return pd.array(out, dtype="boolean")


def annotate_ds(mdata, table: pd.DataFrame, level: str | None = None) -> pd.DataFrame:
    """The columns of the workflow's DS tables for a table of ``model.differential_splicing``.

    ``splicevi ds`` writes ``ds_junctions.tsv`` / ``ds_events.tsv`` with the coordinates, genes and
    annotation status of each feature (and the FDR call named ``is_ds_fdr``); this adds the same to a
    table from the API, so both give the same columns.

    Parameters
    ----------
    mdata
        The MuData the model was set up with (its ``splicing`` modality's ``var``).
    table
        ``model.differential_splicing(...)`` output: per junction (index or column ``junction_id``) or
        per ATSE (``level="event"``: index or column ``event_id``).
    level
        ``"junction"`` or ``"event"``; None: ``event`` when the table has an ``event_id`` column or
        index and no ``junction_id``.
    """
    var = mdata["splicing"].var
    names = set(table.columns) | {table.index.name}
    if level is None:
        level = "event" if EVENT_ID_COLUMN in names and "junction_id" not in names else "junction"
    if level not in ("junction", "event"):
        raise ValueError(f"level must be 'junction' or 'event', got {level!r}")
    id_col = f"{level}_id"
    if id_col not in table.columns:
        table = table.rename_axis(id_col).reset_index()
    coords = junction_coordinates(var) if level == "junction" else event_coordinates(var)
    return annotate_table(rename_call_columns(table, "ds"), coords, id_col)
