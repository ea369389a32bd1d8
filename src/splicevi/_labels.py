"""Ordering of group labels, shared by the tools, the plots and the contrasts."""

from __future__ import annotations

import pandas as pd


def natural_sort(values) -> list[str]:
    """Distinct labels as strings (missing values dropped): integers numerically first, then the rest alphabetically."""
    values = list(pd.unique(pd.Series(list(values)).dropna().astype(str)))
    return sorted(values, key=lambda v: (0, int(v), v) if v.lstrip("-").isdigit() else (1, 0, v))
