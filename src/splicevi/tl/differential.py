"""Model-independent statistics of differential splicing on the PSI scale.

Everything here works on arrays of posterior samples of *group-level* PSI (samples × junctions):
posterior probabilities of a change, Bayes factors, control of the posterior expected FDR, pooled
observed PSI and the per-ATSE aggregation. The model (:class:`splicevi.SPLICEVI`) only has to
produce the samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

_EPS = 1e-8


def bootstrap_group_means(
    samples: np.ndarray, rng: np.random.Generator, observed: np.ndarray | None = None
) -> np.ndarray:
    """Posterior samples of a group's mean PSI from per-cell posterior samples.

    For each posterior sample ``s`` the cells are resampled with replacement (a bootstrap of the
    group) and averaged, so the result carries both the posterior uncertainty of the latent and the
    uncertainty of estimating a group mean from a finite set of heterogeneous cells.

    Parameters
    ----------
    samples
        Samples × cells × junctions per-cell PSI.
    rng
        Random generator of the bootstrap.
    observed
        Optional cells × junctions boolean: average each junction over the resampled cells that
        observe it only (falling back to all resampled cells where none does).

    Returns
    -------
    np.ndarray
        Samples × junctions group-mean PSI.
    """
    n_samples, n_cells = samples.shape[:2]
    draws = rng.integers(0, n_cells, size=(n_samples, n_cells))
    # Bootstrap as multiplicity weights: a (samples × cells) matrix instead of a gathered copy.
    weights = np.zeros((n_samples, n_cells), dtype=np.float64)
    np.add.at(weights, (np.repeat(np.arange(n_samples), n_cells), draws.ravel()), 1.0 / n_cells)
    all_cells = np.einsum("sc,scj->sj", weights, samples)
    if observed is None:
        return all_cells
    mask = np.asarray(observed, dtype=np.float64)
    den = weights @ mask
    num = np.einsum("sc,scj->sj", weights, samples * mask[None])
    return np.where(den > 0, num / np.maximum(den, _EPS), all_cells)


def change_probability(
    dpsi: np.ndarray, delta: float = 0.1, mode: str = "change"
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior probability of differential splicing from ΔPSI samples (samples × features).

    Parameters
    ----------
    dpsi
        Posterior samples of ΔPSI = PSI1 − PSI2.
    delta
        ΔPSI threshold of the ``change`` mode.
    mode
        ``change``: ``P(|ΔPSI| > delta)``. ``vanilla``: ``P(PSI1 > PSI2)``.

    Returns
    -------
    proba
        ``change``: P(|ΔPSI| > delta). ``vanilla``: the probability of the more likely sign,
        ``max(P(PSI1 > PSI2), P(PSI1 < PSI2))`` (so that FDR control applies to both modes).
    bayes_factor
        Natural-log Bayes factor; for ``vanilla`` signed: ``log P(PSI1 > PSI2) / P(PSI1 ≤ PSI2)``.
    """
    if mode == "change":
        proba = (np.abs(dpsi) > delta).mean(axis=0)
        return proba, logit(proba)
    if mode == "vanilla":
        p_up = (dpsi > 0).mean(axis=0)
        return np.maximum(p_up, 1.0 - p_up), logit(p_up)
    raise ValueError(f"mode must be 'change' or 'vanilla', got {mode!r}")


def logit(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Log odds, with probabilities clipped to ``[eps, 1 - eps]`` (finite for 0 and 1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def fdr_calls(proba: np.ndarray, fdr_target: float = 0.05) -> np.ndarray:
    """Features called at a posterior expected FDR of at most ``fdr_target``.

    Sorted by decreasing probability, the expected FDR of the top ``d`` calls is the mean of
    ``1 - proba`` over them; the largest ``d`` whose expected FDR stays within the target is called.
    NaN probabilities are never called.
    """
    proba = np.asarray(proba, dtype=np.float64)
    valid = np.where(np.isfinite(proba), proba, -np.inf)
    order = np.argsort(-valid, kind="stable")
    sorted_p = np.where(np.isfinite(valid[order]), valid[order], 0.0)
    expected_fdr = np.cumsum(1.0 - sorted_p) / np.arange(1, proba.shape[0] + 1)
    ok = np.nonzero((expected_fdr <= fdr_target) & np.isfinite(valid[order]))[0]
    calls = np.zeros(proba.shape[0], dtype=bool)
    if ok.size:
        calls[order[: ok[-1] + 1]] = True
    return calls


def pooled_psi(
    junction_counts: sp.spmatrix, atse_counts: sp.spmatrix, cells: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled observed PSI (Σ k / Σ n over the group's observed cells) and observed-cell counts.

    Parameters
    ----------
    junction_counts, atse_counts
        Cells × junctions ``k`` and ``n`` (``n`` stored on every junction of an observed ATSE).
    cells
        Row indices of the group.

    Returns
    -------
    psi
        Pooled PSI per junction; NaN where no cell of the group observes the junction's ATSE.
    n_obs
        Number of cells of the group with the junction's ATSE observed (n > 0).
    """
    k = sp.csr_matrix(junction_counts)[cells]
    n = sp.csr_matrix(atse_counts)[cells]
    k_sum = np.asarray(k.sum(axis=0)).ravel()
    n_sum = np.asarray(n.sum(axis=0)).ravel()
    n_obs = np.asarray((n > 0).sum(axis=0)).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        psi = np.where(n_sum > 0, k_sum / np.maximum(n_sum, _EPS), np.nan)
    return psi, n_obs


def event_segments(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Junction order grouped by ATSE and the segment starts (for ``np.*.reduceat``).

    Returns
    -------
    order
        Junction indices sorted by ATSE (stable).
    starts
        Start of each ATSE's segment in ``order``.
    events
        ATSE code of each segment.
    """
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_codes))[0] + 1]
    return order, starts, sorted_codes[starts]


def event_level(
    dpsi: np.ndarray,
    junctions: pd.DataFrame,
    codes: np.ndarray,
    delta: float = 0.1,
    mode: str = "change",
    fdr_target: float = 0.05,
) -> pd.DataFrame:
    """Per-ATSE differential splicing from the junction-level ΔPSI samples.

    The evidence of an event is computed from the same joint samples as the junctions': in
    ``change`` mode ``P(max_j |ΔPSI_j| > delta)`` (some junction of the ATSE moves by more than
    ``delta``); in ``vanilla`` mode the sign probability of its best junction. The event-level FDR
    is controlled over these probabilities.

    Parameters
    ----------
    dpsi
        Samples × junctions ΔPSI samples.
    junctions
        The junction-level table (same junction order), with ``effect_size``, ``junction_id`` and,
        when present, ``emp_effect``, ``n_obs_group1``, ``n_obs_group2``, ``gene_name``.
    codes
        Integer ATSE code of each junction.
    delta, mode, fdr_target
        As in the junction-level test.

    Returns
    -------
    pd.DataFrame
        One row per ATSE (index ``event_id``): ``event_id``, ``gene_name``, ``best_junction`` (max
        |effect_size|), ``effect_size`` (signed ΔPSI of the best junction), ``max_abs_dpsi``,
        ``proba_ds``, ``bayes_factor``, ``is_ds_fdr``, ``n_junctions`` and, when available,
        ``emp_max_abs_dpsi``, ``n_obs_group1``, ``n_obs_group2``.
    """
    order, starts, _ = event_segments(codes)
    effect = junctions["effect_size"].to_numpy(dtype=np.float64)
    abs_effect = np.abs(effect)[order]
    # Best junction of each segment: argmax of |effect| within the segment.
    seg_id = np.repeat(np.arange(starts.shape[0]), np.diff(np.r_[starts, order.shape[0]]))
    key = np.lexsort((-abs_effect, seg_id))
    best_pos = key[starts]
    best = order[best_pos]
    if mode == "change":
        max_abs = np.maximum.reduceat(np.abs(dpsi[:, order]), starts, axis=1)
        proba = (max_abs > delta).mean(axis=0)
        bayes = logit(proba)
    else:
        proba, bayes = change_probability(dpsi[:, best], delta, mode)
    ids = junctions["event_id"].to_numpy()[best]
    out = pd.DataFrame(
        {
            "event_id": ids,
            "best_junction": junctions["junction_id"].to_numpy()[best],
            "effect_size": effect[best],
            "max_abs_dpsi": np.abs(effect[best]),
            "proba_ds": proba,
            "bayes_factor": bayes,
            "is_ds_fdr": fdr_calls(proba, fdr_target),
            "n_junctions": np.diff(np.r_[starts, order.shape[0]]),
        },
        index=pd.Index(ids, name="event_id"),
    )
    if "gene_name" in junctions:
        out.insert(1, "gene_name", junctions["gene_name"].to_numpy()[best])
    if "emp_effect" in junctions:
        emp = np.abs(junctions["emp_effect"].to_numpy(dtype=np.float64))[order]
        emp = np.where(np.isfinite(emp), emp, -np.inf)
        emp_max = np.maximum.reduceat(emp, starts)
        out["emp_max_abs_dpsi"] = np.where(np.isfinite(emp_max), emp_max, np.nan)
    for col in ("n_obs_group1", "n_obs_group2"):
        if col in junctions:
            # Every junction of an ATSE shares the ATSE's coverage: take the segment maximum.
            out[col] = np.maximum.reduceat(junctions[col].to_numpy()[order], starts)
    return out


def sort_table(table: pd.DataFrame) -> pd.DataFrame:
    """Sort by decreasing ``proba_ds``, ties broken by decreasing |``effect_size``|."""
    key = pd.DataFrame({"p": table["proba_ds"].to_numpy(), "e": table["effect_size"].abs().to_numpy()})
    order = key.sort_values(["p", "e"], ascending=False, kind="stable").index.to_numpy()
    return table.iloc[order]
