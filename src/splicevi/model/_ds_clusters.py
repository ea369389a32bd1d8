"""Differential splicing valid for groups found on the same data (clusters of the model's latent).

Placeholder of the interface; both functions land with the clusters-design work of issue 18.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def groups_look_like_clusters(model, adata, cells1: np.ndarray, cells2: np.ndarray) -> tuple[bool, float]:
    """Whether the two groups look like clusters of the model's own latent, and the score used."""
    raise NotImplementedError("cluster detection lands with the ds-clusters work of issue 18")


def heldout_ds(
    model, adata, cells1: np.ndarray, cells2: np.ndarray, *, delta: float, fdr_target: float,
    level: str = "junction", **kwargs,
) -> pd.DataFrame:
    """DS valid for groups chosen on the same data (same table contract as ``sample_level_ds``)."""
    raise NotImplementedError("the clusters design (held-out reads) lands with the ds-clusters work of issue 18")
