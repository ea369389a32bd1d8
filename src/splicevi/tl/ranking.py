"""Ordering of differential tables: ranks within each contrast, per-ATSE summaries of junction tables."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._constants import EVENT_ID_COLUMN


def rank_table(table: pd.DataFrame, score: str, effect: str | None = None) -> pd.DataFrame:
    """Sort a differential table by decreasing ``score`` (then |``effect``|) within each contrast.

    Adds a 1-based ``rank`` column per contrast (when a ``contrast`` column exists).
    """
    table = table.copy()
    keys, ascending = [score], [False]
    if effect is not None and effect in table.columns:
        table["_abs_effect"] = table[effect].abs()
        keys.append("_abs_effect")
        ascending.append(False)
    if "contrast" in table.columns:
        order = {c: i for i, c in enumerate(pd.unique(table["contrast"]))}
        table["_contrast_order"] = table["contrast"].map(order)
        keys.insert(0, "_contrast_order")
        ascending.insert(0, True)
    table = table.sort_values(keys, ascending=ascending, kind="stable")
    if "contrast" in table.columns:
        table["rank"] = table.groupby("contrast", sort=False).cumcount() + 1
    else:
        table["rank"] = np.arange(1, len(table) + 1)
    return table.drop(columns=[c for c in ("_abs_effect", "_contrast_order") if c in table.columns])


def events_from_junctions(table: pd.DataFrame) -> pd.DataFrame:
    """Per-ATSE summary of a per-junction differential splicing table.

    Used when the model offers no event-level test: each event gets the evidence of its strongest
    junction (``proba_ds``, ``bayes_factor``), the largest |ΔPSI| (``effect_size`` with its sign)
    and whether any junction is called (``is_ds_fdr``).
    """
    required = {EVENT_ID_COLUMN, "proba_ds", "effect_size"}
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"differential splicing table lacks columns {sorted(missing)}")
    keys = ["contrast", EVENT_ID_COLUMN] if "contrast" in table.columns else [EVENT_ID_COLUMN]
    t = table.assign(_abs=table["effect_size"].abs())
    best = t.sort_values("_abs", ascending=False, kind="stable").groupby(keys, sort=False).head(1)
    best = best.set_index(keys)
    grouped = t.groupby(keys, sort=False)
    agg = pd.DataFrame(
        {
            "proba_ds": grouped["proba_ds"].max(),
            "effect_size": best["effect_size"],
            "top_junction": best["junction_id"] if "junction_id" in best else best.index.get_level_values(-1),
            "n_junctions": grouped.size(),
        }
    )
    if "bayes_factor" in t.columns:
        agg["bayes_factor"] = grouped["bayes_factor"].max()
    if "is_ds_fdr" in t.columns:
        agg["is_ds_fdr"] = grouped["is_ds_fdr"].any()
    if "gene_name" in t.columns:
        agg["gene_name"] = grouped["gene_name"].first()
    for col in ("group1", "group2", "groupby"):
        if col in t.columns:
            agg[col] = grouped[col].first()
    return agg.reset_index()
