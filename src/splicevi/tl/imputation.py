"""Imputation benchmark of PSI: hide whole observed ATSEs per cell, score predictions of them.

A (cell, ATSE) pair is hidden as a whole (all its junctions), so the model cannot read the hidden
PSI off the other junctions of the same event. Everything is vectorised over the sparse entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

from .._constants import EVENT_ID_COLUMN
from ..data.layers import JUNCTION_COUNTS, splicing_layers


@dataclass
class HiddenEntries:
    """Hidden (cell, junction) entries: their reads and the true PSI ``k / n``."""

    rows: np.ndarray
    cols: np.ndarray
    k: np.ndarray
    n: np.ndarray

    @property
    def psi(self) -> np.ndarray:
        """Observed PSI of the hidden entries."""
        return self.k / self.n


def hide_events(
    junction_counts: sp.spmatrix, codes: np.ndarray, fraction: float = 0.1, seed: int = 0
) -> tuple[sp.csr_matrix, HiddenEntries]:
    """Hide a fraction of each cell's observed ATSEs.

    Parameters
    ----------
    junction_counts
        Cells × junctions reads ``k``.
    codes
        ATSE code of each junction.
    fraction
        Fraction of each cell's observed ATSEs to hide (rounded; a cell with a single observed
        ATSE keeps it unless ``fraction`` ≥ 0.5).
    seed
        Random seed.

    Returns
    -------
    masked
        The junction counts with the hidden ATSEs' reads removed (CSR).
    hidden
        Every junction of every hidden (cell, ATSE), with its reads and the ATSE total.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    codes = np.asarray(codes, dtype=np.int64)
    n_events = int(codes.max()) + 1
    k = sp.csr_matrix(junction_counts, dtype=np.float64)
    k.eliminate_zeros()
    atse_n = splicing_layers(k, codes)["cell_by_cluster_matrix"].tocoo()
    rows, cols, n = atse_n.row, atse_n.col, atse_n.data
    pair = rows.astype(np.int64) * n_events + codes[cols]
    uniq_pairs, pair_of_entry = np.unique(pair, return_inverse=True)
    pair_cell = uniq_pairs // n_events
    rng = np.random.default_rng(seed)
    # Rank the pairs of each cell in random order; hide the first round(fraction × count).
    order = np.lexsort((rng.random(uniq_pairs.size), pair_cell))
    counts = np.bincount(pair_cell, minlength=k.shape[0])
    starts = np.cumsum(counts) - counts
    rank = np.empty(uniq_pairs.size, dtype=np.int64)
    rank[order] = np.arange(uniq_pairs.size) - starts[pair_cell[order]]
    n_hide = np.floor(fraction * counts + 0.5).astype(np.int64)
    hidden_pair = rank < n_hide[pair_cell]
    hidden_entry = hidden_pair[pair_of_entry]
    kvals = np.asarray(k[rows[hidden_entry], cols[hidden_entry]]).ravel()
    hidden = HiddenEntries(rows[hidden_entry], cols[hidden_entry], kvals, n[hidden_entry].astype(np.float64))
    drop = sp.csr_matrix((np.ones(hidden.rows.size), (hidden.rows, hidden.cols)), shape=k.shape)
    masked = k - k.multiply(drop)
    masked = sp.csr_matrix(masked, dtype=np.float32)
    masked.eliminate_zeros()
    return masked, hidden


def hide_events_mudata(
    mdata: md.MuData, fraction: float = 0.1, seed: int = 0, modality: str = "splicing"
) -> tuple[md.MuData, HiddenEntries]:
    """Copy of ``mdata`` whose splicing layers lack a fraction of each cell's observed ATSEs.

    All four layers of the data contract are recomputed from the masked junction counts.
    """
    spl = mdata.mod[modality]
    from ..data.layers import event_codes

    codes, _ = event_codes(spl.var[EVENT_ID_COLUMN])
    masked_k, hidden = hide_events(spl.layers[JUNCTION_COUNTS], codes, fraction, seed)
    out = mdata.copy()
    new = out.mod[modality]
    for name, layer in splicing_layers(masked_k, codes).items():
        new.layers[name] = layer
    new.X = new.layers["junc_ratio"].copy()
    return out, hidden


def group_mean_psi(
    junction_counts: sp.spmatrix, codes: np.ndarray, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean observed PSI of each junction per group (groups × junctions) and per cell's group lookup.

    The mean is over the cells of the group that observe the junction's ATSE (unweighted by
    coverage). A junction unobserved in a group takes the global mean; unobserved everywhere,
    ``1 / (junctions in its ATSE)``.

    Returns
    -------
    table
        Groups × junctions mean PSI (one row when ``groups`` is None).
    group_codes
        Row of ``table`` for each cell.
    """
    layers = splicing_layers(sp.csr_matrix(junction_counts), codes)
    ratio, mask = layers["junc_ratio"].tocsr(), layers["psi_mask"].tocsr()
    n_cells = ratio.shape[0]
    if groups is None:
        group_codes = np.zeros(n_cells, dtype=np.int64)
        n_groups = 1
    else:
        group_codes, _ = pd.factorize(np.asarray(groups))
        n_groups = int(group_codes.max()) + 1
    member = sp.csr_matrix((np.ones(n_cells), (group_codes, np.arange(n_cells))), shape=(n_groups, n_cells))
    sums = np.asarray((member @ ratio).todense())
    nobs = np.asarray((member @ mask).todense())
    glob_n = nobs.sum(axis=0)
    sizes = np.bincount(np.asarray(codes), minlength=int(np.max(codes)) + 1)[codes]
    glob = np.where(glob_n > 0, sums.sum(axis=0) / np.maximum(glob_n, 1), 1.0 / sizes)
    table = np.where(nobs > 0, sums / np.maximum(nobs, 1), glob[None, :])
    return table, group_codes


def score_predictions(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Spearman, Pearson and mean absolute error (L1) of predictions against the hidden PSI."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    constant = np.ptp(pred) == 0 or np.ptp(truth) == 0
    return {
        "spearman": float("nan") if constant else float(spearmanr(pred, truth)[0]),
        "pearson": float("nan") if constant else float(pearsonr(pred, truth)[0]),
        "l1": float(np.abs(pred - truth).mean()),
        "n": int(pred.size),
    }


def imputation_scores(
    predicted: np.ndarray,
    hidden: HiddenEntries,
    masked_counts: sp.spmatrix,
    codes: np.ndarray,
    groups: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Score imputed PSI at the hidden entries, with the group-mean and global-mean baselines.

    Parameters
    ----------
    predicted
        Cells × junctions imputed PSI (dense; e.g. the decoded PSI of a model trained on the
        masked data), or the values at the hidden entries (same length as ``hidden.rows``).
    hidden
        From :func:`hide_events`.
    masked_counts
        The masked junction counts (what the model and the baselines saw).
    codes
        ATSE code of each junction.
    groups
        Label of each cell for the group-mean baseline (e.g. cell type or cluster).

    Returns
    -------
    dict
        ``model``, ``group_mean`` (when ``groups`` is given) and ``global_mean`` score dicts
        (:func:`score_predictions`).
    """
    predicted = np.asarray(predicted)
    if predicted.ndim == 2:
        predicted = predicted[hidden.rows, hidden.cols]
    truth = hidden.psi
    out = {"model": score_predictions(predicted, truth)}
    if groups is not None:
        table, gcode = group_mean_psi(masked_counts, codes, groups)
        out["group_mean"] = score_predictions(table[gcode[hidden.rows], hidden.cols], truth)
    glob, _ = group_mean_psi(masked_counts, codes, None)
    out["global_mean"] = score_predictions(glob[0, hidden.cols], truth)
    return out
