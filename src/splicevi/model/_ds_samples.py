"""Differential splicing with samples as the units (groups that are unions of samples).

Placeholder of the interface: :func:`samples_nested_in_groups` is final; :func:`sample_level_ds`
lands with the samples-design work of issue 18 (pseudobulk per sample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def samples_nested_in_groups(
    samples: np.ndarray, cells1: np.ndarray, cells2: np.ndarray, min_samples: int = 2
) -> bool:
    """True when no sample has cells in both groups and each group has >= min_samples samples.

    Parameters
    ----------
    samples
        One sample label per cell of the data (cells without a label, NaN/None, make the answer
        False: their sample is unknown).
    cells1, cells2
        Integer indices of the two groups' cells.
    min_samples
        Samples each group needs for samples to be the units of a test.

    Returns
    -------
    bool
    """
    samples = np.asarray(samples, dtype=object)
    s1 = samples[np.asarray(cells1, dtype=np.int64)]
    s2 = samples[np.asarray(cells2, dtype=np.int64)]
    if s1.size == 0 or s2.size == 0 or pd.isna(s1).any() or pd.isna(s2).any():
        return False
    u1, u2 = set(map(str, s1)), set(map(str, s2))
    return not (u1 & u2) and len(u1) >= min_samples and len(u2) >= min_samples


def sample_level_ds(
    model,
    adata,
    cells1: np.ndarray,
    cells2: np.ndarray,
    samples: np.ndarray,
    *,
    delta: float,
    fdr_target: float,
    level: str = "junction",
    covariates: pd.DataFrame | None = None,
    min_samples: int = 2,
) -> pd.DataFrame:
    """DS with samples as units (pseudobulk per sample); see the module docstring."""
    raise NotImplementedError(
        "the samples design (pseudobulk per sample) lands with the ds-samples work of issue 18"
    )
