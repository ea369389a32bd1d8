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
    """A comparison of two groups of cells: ``group1`` against ``group2`` (``None`` = the rest)."""

    name: str
    groupby: str
    group1: str
    group2: str | None = None


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
        The MuData whose annotations are checked (nothing is written to it).
    contrasts
        Mappings with ``name``, ``groupby``, ``group1`` and optional ``group2`` (``None``/``"rest"``
        = all other cells). Empty or ``None``: one contrast per group of ``default_groupby``.
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
        labels = group_labels(mdata, c["groupby"])
        group2 = c.get("group2")
        group2 = None if group2 in (None, REST) else str(group2)
        for g in [str(c["group1"])] + ([group2] if group2 else []):
            n = int((labels == g).sum())
            if n < min_cells:
                present = ", ".join(natural_sort(labels.dropna().unique())[:20])
                raise ValueError(
                    f"contrast '{c['name']}': group '{g}' of '{c['groupby']}' has {n} cells (need {min_cells}); "
                    f"groups present: {present}"
                )
        out.append(Contrast(str(c["name"]), str(c["groupby"]), str(c["group1"]), group2))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast names must be unique, got {names}")
    return out
