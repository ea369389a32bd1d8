"""Counts behind the splicing figures: pooled reads per group, cells observing each ATSE, contrasts.

Everything works on the sparse junction counts ``k`` and the junction → ATSE map (``n`` is the
scatter-add of ``k`` over an ATSE), selecting only the columns of the features drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from splicevi._labels import cell_labels

from .._constants import EVENT_ID_COLUMN


def junction_and_event_counts(mdata, junctions: Sequence[str]) -> tuple[sp.csc_matrix, sp.csc_matrix]:
    """Cells × ``junctions`` matrices of junction reads ``k`` and ATSE reads ``n`` (CSC)."""
    from splicevi.data.layers import ATSE_COUNTS, JUNCTION_COUNTS, event_codes, junction_to_event_matrix

    spl = mdata["splicing"]
    junctions = [str(j) for j in junctions]
    missing = [j for j in junctions if j not in spl.var_names]
    if missing:
        raise ValueError(f"{len(missing)} junction(s) not in the data, e.g. {missing[:3]}")
    cols = spl.var_names.get_indexer(junctions)
    k_all = sp.csc_matrix(spl.layers[JUNCTION_COUNTS])
    if ATSE_COUNTS in spl.layers:
        n = sp.csc_matrix(spl.layers[ATSE_COUNTS])[:, cols]
    else:
        # n of a junction = sum of k over its ATSE: only the ATSEs of the chosen junctions are needed.
        codes, _ = event_codes(spl.var[EVENT_ID_COLUMN])
        m = junction_to_event_matrix(codes)
        n = sp.csc_matrix((k_all @ m) @ m[cols].T)
    return k_all[:, cols], n


def event_junctions(mdata, event_id: str) -> list[str]:
    """Junction ids of one ATSE, ordered by start then end."""
    var = mdata["splicing"].var
    members = var.index[var[EVENT_ID_COLUMN].astype(str).to_numpy() == str(event_id)]
    if len(members) == 0:
        raise ValueError(f"event '{event_id}' not in the data")
    from splicevi.tl.annotate import junction_coordinates

    coords = junction_coordinates(var.loc[members])
    return list(coords.sort_values(["start", "end"], kind="stable").index)


def observed_matrix(mdata) -> tuple[sp.csr_matrix, pd.Index]:
    """Cells × events sparse 0/1 matrix, 1 where the ATSE has at least one read (n > 0), and the event ids."""
    from splicevi.data.layers import JUNCTION_COUNTS, event_codes, observed_atses

    spl = mdata["splicing"]
    codes, categories = event_codes(spl.var[EVENT_ID_COLUMN].astype(str))
    return observed_atses(spl.layers[JUNCTION_COUNTS], codes), pd.Index(
        categories.astype(str), name=EVENT_ID_COLUMN
    )


def observing_cells(mdata, masks: dict[str, np.ndarray], observed=None) -> pd.DataFrame:
    """Events × groups table: number of cells of each group (boolean cell mask) observing each ATSE.

    ``observed`` is :func:`observed_matrix` of ``mdata`` when already computed.
    """
    observed, events = observed_matrix(mdata) if observed is None else observed
    out = pd.DataFrame(index=events)
    for name, mask in masks.items():
        out[name] = np.asarray(observed[np.flatnonzero(mask)].sum(axis=0)).ravel().astype(np.int64)
    return out


def contrast_masks(labels: pd.Series, group1: str, group2: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Boolean cell masks of the two sides of a contrast (``group2`` None or "rest": all other cells)."""
    g1 = (labels == str(group1)).to_numpy()
    if group2 is None or str(group2) == "rest":
        g2 = labels.notna().to_numpy() & ~g1
    else:
        g2 = (labels == str(group2)).to_numpy()
    return g1, g2


def well_observed(mdata, table: pd.DataFrame, min_cells: int, id_col: str = EVENT_ID_COLUMN) -> pd.DataFrame:
    """Rows of a DS table whose ATSE is observed in at least ``min_cells`` cells on both sides of its contrast.

    A "top" event seen in a handful of cells is a claim about those cells only; the figures show
    events that enough cells of each group observe. The contrast sides come from the table's
    ``groupby``, ``group1``, ``group2`` columns; a table without them is filtered on all cells.
    """
    if min_cells <= 0 or table.empty:
        return table
    event_col = EVENT_ID_COLUMN if EVENT_ID_COLUMN in table.columns else None
    if event_col is None:
        if id_col != "junction_id" or "junction_id" not in table.columns:
            raise ValueError("table has no 'event_id' column")
        ev = mdata["splicing"].var[EVENT_ID_COLUMN].astype(str)
        events = ev.reindex(table["junction_id"].astype(str)).to_numpy()
    else:
        events = table[event_col].astype(str).to_numpy()
    keep = np.zeros(len(table), dtype=bool)
    observed = observed_matrix(mdata)
    sides = ["groupby", "group1", "group2"]
    groups = (
        table.groupby(sides, sort=False, dropna=False).indices
        if set(sides) <= set(table.columns)
        else {None: None}
    )
    for key, rows in groups.items():
        rows = np.arange(len(table)) if rows is None else rows
        if key is None:
            masks = {"all": np.ones(mdata["splicing"].n_obs, dtype=bool)}
        else:
            groupby, g1, g2 = key
            m1, m2 = contrast_masks(cell_labels(mdata, groupby, mdata["splicing"].obs_names), g1, g2)
            masks = {"group1": m1, "group2": m2}
        counts = observing_cells(mdata, masks, observed).reindex(events[rows])
        if counts.isna().any().any():
            raise ValueError(
                f"event '{events[rows][counts.isna().any(axis=1).to_numpy()][0]}' not in the data"
            )
        keep[rows] = (counts.to_numpy() >= min_cells).all(axis=1)
    return table[keep]


def pooled_counts(
    mdata, junctions: Sequence[str], masks: dict[str, np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Pooled junction reads, ATSE reads and number of observing cells, per junction and group of cells.

    Returns
    -------
    k, n, n_cells
        Junctions × groups tables: summed junction reads, summed ATSE reads (over the cells where
        the ATSE is observed), cells where the ATSE is observed. Pooled PSI is ``k / n``.
    """
    kk, nn = junction_and_event_counts(mdata, junctions)
    kk, nn = sp.csr_matrix(kk), sp.csr_matrix(nn)
    idx = [str(j) for j in junctions]
    k, n, cells = (pd.DataFrame(0.0, index=idx, columns=list(masks)) for _ in range(3))
    for name, mask in masks.items():
        rows = np.flatnonzero(mask)
        k[name] = np.asarray(kk[rows].sum(axis=0)).ravel()
        n[name] = np.asarray(nn[rows].sum(axis=0)).ravel()
        cells[name] = np.asarray((nn[rows] > 0).sum(axis=0)).ravel()
    return k, n, cells
