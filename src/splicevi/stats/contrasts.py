"""Group contrasts: which cells are compared with which (one home for the model, ``tl`` and the CLI)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from splicevi._labels import cell_labels, natural_sort

#: obs column of the Leiden clusters (the default grouping of the contrasts).
CLUSTER_KEY = "leiden"
#: Group name meaning "all cells not in group1".
REST = "rest"


@dataclass(frozen=True)
class Contrast:
    """A comparison of two groups of cells: ``group1`` against ``group2`` (``None`` = the rest).

    With a ``subset`` (e.g. condition within one cell type), ``groupby`` is a derived annotation
    (:func:`subset_column`) that is missing outside the subset, so the model's methods, which treat a
    missing label as "in no group", see only the subset's cells; ``source`` is the original annotation.
    """

    name: str
    groupby: str
    group1: str
    group2: str | None = None
    subset: tuple[tuple[str, tuple[str, ...]], ...] = ()
    source: str | None = None


def subset_column(groupby: str, name: str) -> str:
    """Name of the derived annotation of a contrast with a subset: ``<groupby>_within_<contrast name>``."""
    return f"{groupby}_within_{name}"


def _subset_of(spec, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{column: value or [values]}`` as sorted ``((column, (values...)), ...)``, checked for shape."""
    if spec is None or len(spec) == 0:
        return ()
    if isinstance(spec, tuple):  # already in this form
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"{where}: 'subset' must be a mapping of annotation to value(s), e.g. {{cell_type: T}}"
        )
    out = []
    for col, values in spec.items():
        values = [values] if isinstance(values, (str, int, float)) else list(values)
        if not values:
            raise ValueError(f"{where}: subset '{col}' lists no value")
        out.append((str(col), tuple(str(v) for v in values)))
    return tuple(sorted(out))


def subset_labels(mdata, groupby: str, subset, where: str = "contrast") -> pd.Series:
    """``groupby``'s labels, missing for the cells outside ``subset`` (every column's values must match).

    Raises
    ------
    ValueError
        When a subset value names no cell (with the values present).
    """
    labels = group_labels(mdata, groupby)
    inside = pd.Series(True, index=labels.index)
    for col, values in _subset_of(subset, where):
        column = group_labels(mdata, col).reindex(labels.index)
        absent = [v for v in values if not (column == v).any()]
        if absent:
            present = ", ".join(natural_sort(column.dropna().unique())[:20])
            raise ValueError(
                f"{where}: subset value(s) {', '.join(absent)} of '{col}' name no cell; values: {present}"
            )
        inside &= column.isin(values).to_numpy()
    return labels.where(inside)


def group_labels(data, groupby: str) -> pd.Series:
    """The cell annotation ``groupby`` as strings (missing values stay missing), indexed by cell.

    Looked up in ``data.obs``, then (MuData) in each modality's ``obs``
    (:func:`splicevi._labels.cell_labels`). Nothing is written.
    """
    return cell_labels(data, groupby)


def store_group_labels(mdata, groupby: str) -> pd.Series:
    """:func:`group_labels`, also stored as a string categorical in ``mdata.obs[groupby]``.

    For code that reads the annotation from ``obs`` only (scvi-tools' differential expression).
    """
    labels = group_labels(mdata, groupby)
    mdata.obs[groupby] = pd.Categorical(labels)
    return labels


def resolve_contrasts(
    mdata,
    contrasts: Iterable[Mapping] | None = None,
    default_groupby: str = CLUSTER_KEY,
    min_cells: int = 3,
) -> list[Contrast]:
    """Contrasts to test: the configured ones, or each group of ``default_groupby`` against the rest.

    Parameters
    ----------
    mdata
        The MuData whose annotations are checked (written only for contrasts with a subset).
    contrasts
        Mappings with ``name``, ``groupby``, ``group1`` and optional ``group2`` (``None``/``"rest"``
        = all other cells) and ``subset`` (``{annotation: value or [values]}``: only those cells are
        compared, e.g. condition within one cell type; its derived grouping :func:`subset_column` is
        written to ``mdata.obs``). Empty or ``None``: one contrast per group of ``default_groupby``.
    default_groupby
        Annotation used when no contrasts are given.
    min_cells
        Groups with fewer cells are skipped (in the default contrasts) or rejected (configured ones).

    Returns
    -------
    list of Contrast
    """
    contrasts = list(contrasts or [])
    if not contrasts:
        labels = group_labels(mdata, default_groupby)
        counts = labels.value_counts()
        groups = [g for g in natural_sort(counts.index) if counts[g] >= min_cells and counts[g] < len(labels)]
        if not groups:
            raise ValueError(
                f"no group of '{default_groupby}' has at least {min_cells} cells and fewer than all cells; "
                "nothing to compare (try a higher cluster resolution, or configure contrasts)"
            )
        return [Contrast(f"{default_groupby}{g}_vs_rest", default_groupby, g, None) for g in groups]
    out = []
    for i, c in enumerate(contrasts):
        missing = {"name", "groupby", "group1"} - set(c)
        if missing:
            raise ValueError(f"contrast {i} lacks {', '.join(sorted(missing))}")
        subset = _subset_of(c.get("subset"), f"contrast '{c['name']}'")
        if subset:
            # Written to obs (as a string categorical): the model's methods and the figures look the
            # grouping up by name, and cells outside the subset are then in no group.
            groupby = subset_column(str(c["groupby"]), str(c["name"]))
            labels = subset_labels(mdata, str(c["groupby"]), subset, f"contrast '{c['name']}'")
            mdata.obs[groupby] = pd.Categorical(labels.reindex(mdata.obs_names))
        else:
            groupby = str(c["groupby"])
            labels = group_labels(mdata, groupby)
        group2 = c.get("group2")
        group2 = None if group2 in (None, REST) else str(group2)
        for g in [str(c["group1"])] + ([group2] if group2 else []):
            n = int((labels == g).sum())
            if n < min_cells:
                present = ", ".join(natural_sort(labels.dropna().unique())[:20])
                raise ValueError(
                    f"contrast '{c['name']}': group '{g}' of '{c['groupby']}'{' within the subset' if subset else ''} "
                    f"has {n} cells (need {min_cells}); groups present: {present}"
                )
        out.append(Contrast(str(c["name"]), groupby, str(c["group1"]), group2, subset, str(c["groupby"])))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast names must be unique, got {names}")
    return out
