"""Cell labels: an annotation looked up across a MuData, and the order of its groups."""

from __future__ import annotations

import pandas as pd


def natural_sort(values) -> list[str]:
    """Distinct labels as strings (missing values dropped): integers numerically first, then the rest alphabetically."""
    values = list(pd.unique(pd.Series(list(values)).dropna().astype(str)))
    return sorted(values, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))


def cell_labels(mdata, groupby: str, obs_names=None) -> pd.Series:
    """The annotation ``groupby`` as strings (``None`` where missing), from the MuData or a modality.

    Looked up in ``mdata.obs`` first, then in each modality's ``obs`` in order; reindexed to
    ``obs_names`` (default: the MuData's cells). Nothing is written back.
    """
    obs_names = mdata.obs_names if obs_names is None else obs_names
    if groupby in mdata.obs.columns:
        values = mdata.obs[groupby]
    else:
        found = [m.obs[groupby] for m in getattr(mdata, "mod", {}).values() if groupby in m.obs.columns]
        if not found:
            raise ValueError(
                f"no cell annotation '{groupby}' (available: {', '.join(map(str, mdata.obs.columns)) or 'none'})"
            )
        values = found[0]
    values = values.reindex(obs_names)
    return values.astype(str).where(values.notna(), None)
