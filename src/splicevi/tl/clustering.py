"""Group contrasts of cells: which groups of which annotation each differential test compares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from splicevi._labels import natural_sort as _natural_order

from .embedding import CLUSTER_KEY

#: Group name meaning "all cells not in group1".
REST = "rest"


@dataclass(frozen=True)
class Contrast:
    """A comparison of two groups of cells: ``group1`` against ``group2`` (``None`` = the rest)."""

    name: str
    groupby: str
    group1: str
    group2: str | None = None


def group_labels(mdata, groupby: str) -> pd.Series:
    """The cell annotation ``groupby`` as strings, looked up in ``mdata.obs`` then in each modality.

    Also stores it (as a string categorical) in ``mdata.obs[groupby]`` so that the model's
    differential methods find it there.
    """
    if groupby in mdata.obs.columns:
        values = mdata.obs[groupby]
    else:
        found = [m.obs[groupby].reindex(mdata.obs_names) for m in mdata.mod.values() if groupby in m.obs.columns]
        if not found:
            raise ValueError(
                f"cell annotation '{groupby}' not found (available: {', '.join(map(str, mdata.obs.columns)) or 'none'})"
            )
        values = found[0]
    labels = values.astype(str).where(values.notna(), None)
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
        The MuData (its annotations are checked; the grouping columns are stored in ``mdata.obs``).
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
        groups = [g for g in _natural_order(counts.index) if counts[g] >= min_cells and counts[g] < len(labels)]
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
                present = ", ".join(_natural_order(labels.dropna().unique())[:20])
                raise ValueError(
                    f"contrast '{c['name']}': group '{g}' of '{c['groupby']}' has {n} cells (need {min_cells}); "
                    f"groups present: {present}"
                )
        out.append(Contrast(str(c["name"]), str(c["groupby"]), str(c["group1"]), group2))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        raise ValueError(f"contrast names must be unique, got {names}")
    return out
