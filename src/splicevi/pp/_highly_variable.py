"""Highly variable ATSEs written into the splicing modality's ``var`` (scanpy-style)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from .._constants import EVENT_ID_COLUMN
from ..data.layers import JUNCTION_COUNTS, event_codes
from ..data.variable_atses import DEFAULT_N_TOP, atse_variation, select_variable_atses, variation_ranks


def highly_variable_atses(
    data: MuData | AnnData,
    n_top: int | None = DEFAULT_N_TOP,
    min_z: float | None = None,
    min_cells: int = 10,
    modality: str = "splicing",
    layer: str = JUNCTION_COUNTS,
    event_key: str = EVENT_ID_COLUMN,
    inplace: bool = True,
) -> pd.DataFrame | None:
    """Mark the ATSEs whose junction usage varies across cells more than their reads explain.

    The statistic (:mod:`splicevi.data.variable_atses`) is the moment estimate ``ρ̂`` of the share
    of junction-usage variance between cells, from the pairs of reads each cell has in the ATSE,
    ranked by its excess over the median ATSE in standard errors (``z``). Every junction of a
    selected ATSE is marked.

    Parameters
    ----------
    data
        MuData (its ``modality``) or the splicing AnnData itself.
    n_top
        Number of ATSEs to select (``None``: no cap; then set ``min_z``).
    min_z
        Select only ATSEs with ``z ≥ min_z``.
    min_cells
        ATSEs with fewer cells of at least two reads are never selected.
    modality
        Splicing modality of a MuData.
    layer
        Layer of junction read counts ``k``.
    event_key
        ``var`` column with each junction's ATSE.
    inplace
        Write ``var["highly_variable"]`` and the statistic columns (``hva_rho``, ``hva_z``,
        ``hva_rank``, ``hva_cells_multi``, ``hva_mean_reads``) per junction (its ATSE's values);
        otherwise return the per-ATSE table.

    Returns
    -------
    pandas.DataFrame or None
        With ``inplace=False``: one row per ATSE (index: ATSE id) with the statistic columns and
        ``highly_variable``.
    """
    if isinstance(data, MuData):
        if modality not in data.mod:
            raise KeyError(f"MuData has no modality {modality!r} (modalities: {sorted(data.mod)})")
        adata = data.mod[modality]
    elif isinstance(data, AnnData):
        adata = data
    else:
        raise TypeError(f"expected MuData or AnnData, got {type(data).__name__}")
    if layer not in adata.layers:
        raise KeyError(
            f"splicing data has no layer {layer!r} of junction read counts (layers: {sorted(adata.layers)}); "
            "use the output of `splicevi assemble`"
        )
    if event_key not in adata.var:
        raise KeyError(f"splicing var has no column {event_key!r} (the ATSE of each junction)")
    if n_top is None and min_z is None:
        raise ValueError("give n_top, min_z or both")
    codes, names = event_codes(adata.var[event_key])
    table = atse_variation(adata.layers[layer], codes, min_cells=min_cells)
    table["hva_rank"] = variation_ranks(table)
    table["highly_variable"] = select_variable_atses(table, n_top=n_top, min_z=min_z)
    table.index = pd.Index(np.asarray(names), name=event_key)
    if not inplace:
        return table
    per_junction = table.iloc[codes]
    for column in ("highly_variable", "hva_rho", "hva_z", "hva_rank", "hva_cells_multi", "hva_mean_reads"):
        adata.var[column] = per_junction[column].to_numpy()
    adata.uns["highly_variable_atses"] = {
        "n_top": n_top,
        "min_z": min_z,
        "min_cells": min_cells,
        "layer": layer,
        "n_selected": int(table["highly_variable"].sum()),
    }
    if isinstance(data, MuData):
        data.update()
    return None
