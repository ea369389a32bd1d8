"""Quality-control numbers of a run, per sample and overall (tables for the report).

Per sample: cells ingested (after the barcode list and empty-cell removal of ``splicevi ingest``),
cells kept in the model-ready file, junctions and ATSEs with reads among the kept ones, junction
reads per cell and the fraction of ATSEs observed per cell (median, and 10th / 90th percentiles).
Overall: the same over all cells, plus the junctions removed by each ``splicevi atse`` filter.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import EVENT_ID_COLUMN

#: Sample name of a single-input run (its cells carry no ``sample`` annotation).
SINGLE = "input"


def _per_cell(values: np.ndarray, name: str) -> dict:
    if len(values) == 0:
        return {f"{name}_median": 0.0, f"{name}_p10": 0.0, f"{name}_p90": 0.0}
    p10, med, p90 = np.percentile(values, [10, 50, 90])
    return {f"{name}_median": float(med), f"{name}_p10": float(p10), f"{name}_p90": float(p90)}


def _row(splicing: ad.AnnData, mask: np.ndarray, codes: np.ndarray, k) -> dict:
    sub = k[mask]
    cols = np.unique(sub.indices)
    return {
        "cells_kept": int(mask.sum()),
        "junctions_with_reads": int(len(cols)),
        "atses_with_reads": int(len(np.unique(codes[cols]))) if len(cols) else 0,
        "junction_reads": int(sub.sum()),
        **_per_cell(splicing.obs["n_junction_reads"].to_numpy()[mask], "reads_per_cell"),
        **_per_cell(splicing.obs["frac_events_observed"].to_numpy()[mask], "frac_atses_observed_per_cell"),
    }


def qc_tables(
    splicing: ad.AnnData, ingested: dict[str, int], atse_summary: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-sample and overall QC tables.

    Parameters
    ----------
    splicing
        The ``splicing`` modality of ``data.h5mu`` (layer ``cell_by_junction_matrix``, obs QC columns).
    ingested
        Cells per sample after ingest (``{"input": n}`` for a single input).
    atse_summary
        ``events.summary.json`` of ``splicevi atse``.

    Returns
    -------
    per_sample, overall
        ``per_sample`` one row per sample; ``overall`` two columns (metric, value).
    """
    import scipy.sparse as sp

    k = sp.csr_matrix(splicing.layers["cell_by_junction_matrix"])
    codes = pd.factorize(splicing.var[EVENT_ID_COLUMN])[0]
    samples = (
        splicing.obs["sample"].astype(str).to_numpy()
        if "sample" in splicing.obs
        else np.full(splicing.n_obs, SINGLE)
    )
    rows = []
    for name, n_in in ingested.items():
        rows.append(
            {"sample": name, "cells_ingested": int(n_in), **_row(splicing, samples == name, codes, k)}
        )
    per_sample = pd.DataFrame(rows)
    overall = {
        "samples": len(ingested),
        "cells_ingested": int(sum(ingested.values())),
        **_row(splicing, np.ones(splicing.n_obs, bool), codes, k),
        "junctions_into_atse_filters": atse_summary.get("n_junctions_in", ""),
    }
    for filt, n in atse_summary.get("removed", {}).items():
        overall[f"junctions_removed_by_{filt}"] = n
    overall["junctions_kept"] = atse_summary.get("n_junctions_kept", splicing.n_vars)
    overall["atses_kept"] = atse_summary.get("n_events", int(codes.max()) + 1)
    return per_sample, pd.DataFrame({"metric": list(overall), "value": list(overall.values())})
