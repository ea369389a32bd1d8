"""Droplet-coverage references and an independent generator for ``bench/quality.py``.

References for the within-pair ARI of the two cell types that differ only in splicing, computed
on the pair's cells only:

* :func:`mixture_em`: a two-component multinomial mixture (EM, restarts) on the junction counts
  of the most variable ATSEs of the pair's cells;
* :func:`svd_pair`: truncated SVD of centred PSI of the pair's cells (all ATSEs, or the selected);
* :func:`oracle_llr`: the likelihood ratio of each cell's counts under the two types' true PSIs
  (the information limit of the reads).

:func:`generate` is a small generator written for this bench, independent of
:mod:`splicevi.data.simulate` (which the project tuned on): per-ATSE Dirichlet-multinomial
concentration varying varying 20-fold, a heavy-tailed (gamma-Pareto) cell depth,
ATSE expression from a gamma, geometric reads per observed pair, NB gene counts; same design
(cells, ATSEs, fraction differential, 6 types of which the last two share expression and differ
only in splicing, observed fraction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from sklearn.metrics import adjusted_rand_score

from splicevi.data.layers import centred_psi, event_codes, junction_to_event_matrix
from splicevi.data.simulate import SimulatedData
from splicevi.data.variable_atses import atse_variation, select_variable_atses


def mixture_em(
    k: sp.csr_matrix, codes: np.ndarray, n_restarts: int = 10, n_iter: int = 200, seed: int = 0
) -> np.ndarray:
    """Cluster labels of a 2-component multinomial mixture on junction counts (best of restarts).

    Component ``t`` has a PSI ``θ_t`` per junction (summing to 1 within each ATSE); a cell's
    log-likelihood under it is ``Σ_j k_cj log θ_tj``. EM with a pseudo-count of 0.5 read per junction.
    """
    k = sp.csr_matrix(k, dtype=np.float64)
    m = junction_to_event_matrix(codes)
    rng = np.random.default_rng(seed)
    best, best_ll = None, -np.inf
    for _ in range(n_restarts):
        resp = rng.dirichlet([1.0, 1.0], size=k.shape[0])
        ll_total = -np.inf
        for _ in range(n_iter):
            num = np.asarray(k.T @ resp).T + 0.5  # 2 × junctions
            event_sum = np.asarray(m.T @ num.T).T  # 2 × ATSEs
            theta = num / event_sum[:, codes]
            log_theta = np.log(theta)
            log_lik = np.asarray(k @ log_theta.T)  # cells × 2
            weights = resp.mean(axis=0)
            log_post = log_lik + np.log(np.maximum(weights, 1e-12))
            norm = np.logaddexp(log_post[:, 0], log_post[:, 1])
            new_ll = float(norm.sum())
            resp = np.exp(log_post - norm[:, None])
            if new_ll - ll_total < 1e-6 * abs(new_ll):
                break
            ll_total = new_ll
        if new_ll > best_ll:
            best_ll, best = new_ll, resp.argmax(axis=1)
    return best


def oracle_llr(k: sp.csr_matrix, psi_a: np.ndarray, psi_b: np.ndarray) -> np.ndarray:
    """Labels from the sign of each cell's log-likelihood ratio under two known PSI vectors."""
    la = np.log(np.clip(psi_a, 1e-3, 1.0))
    lb = np.log(np.clip(psi_b, 1e-3, 1.0))
    llr = np.asarray(sp.csr_matrix(k, dtype=np.float64) @ (la - lb)).ravel()
    return (llr > 0).astype(int)


def svd_pair(k: sp.csr_matrix, codes: np.ndarray, n_comp: int = 10, seed: int = 0) -> np.ndarray:
    """Truncated SVD of centred PSI (the pair's cells)."""
    centred = centred_psi(k, codes)
    n_comp = max(1, min(n_comp, min(centred.shape) - 1))
    return TruncatedSVD(n_comp, random_state=seed).fit_transform(centred)


def ari_k2(x: np.ndarray, truth: np.ndarray, seed: int = 0) -> float:
    """ARI of k-means (k=2, 10 restarts)."""
    labels = KMeans(2, n_init=10, random_state=seed).fit_predict(np.asarray(x, dtype=np.float64))
    return float(adjusted_rand_score(truth, labels))


def pair_references(
    k: sp.csr_matrix, codes: np.ndarray, truth: np.ndarray, psi_a, psi_b, seed: int = 0
) -> dict:
    """Within-pair ARIs of the references, on the pair's cells (``k``: their junction counts)."""
    k = sp.csr_matrix(k)
    table = atse_variation(k, codes)
    out = {}
    for n_top in (200, 400):
        keep_events = select_variable_atses(table, n_top=n_top)
        cols = np.flatnonzero(keep_events[codes])
        sub_codes, _ = event_codes(pd.Series(codes[cols]))
        labels = mixture_em(k[:, cols], sub_codes, seed=seed)
        out[f"mixture_top{n_top}"] = round(float(adjusted_rand_score(truth, labels)), 3)
        if n_top == 400:
            out["svd_top400"] = round(ari_k2(svd_pair(k[:, cols], sub_codes, seed=seed), truth, seed), 3)
    out["svd_all"] = round(ari_k2(svd_pair(k, codes, seed=seed), truth, seed), 3)
    out["oracle_llr"] = round(float(adjusted_rand_score(truth, oracle_llr(k, psi_a, psi_b))), 3)
    return out


def generate(
    n_cells: int = 3000,
    n_genes: int = 1000,
    n_events: int = 2500,
    frac_ds: float = 0.1,
    observed_fraction: float = 0.03,
    n_types: int = 6,
    seed: int = 0,
) -> SimulatedData:
    """Independent generator (see the module docstring); returns the project's container."""
    rng = np.random.default_rng(seed + 1000)
    types = [f"type{t}" for t in range(n_types)]
    cell_type = rng.integers(0, n_types, size=n_cells)
    batch = rng.integers(0, 2, size=n_cells)
    # Expression: 5 programs, the last two types share one; NB counts, log-normal size factors.
    program = np.minimum(np.arange(n_types), n_types - 2)
    base = rng.gamma(0.6, 1.0, size=n_genes) + 0.02
    lfc = np.where(rng.random((n_types - 1, n_genes)) < 0.15, rng.normal(0, 1.2, (n_types - 1, n_genes)), 0.0)
    mu = base[None, :] * np.exp(
        lfc[program[cell_type]] + rng.normal(0, 0.2, n_genes)[None, :] * batch[:, None]
    )
    size = rng.lognormal(np.log(3000), 0.5, size=n_cells)
    mu = mu / mu.sum(axis=1, keepdims=True) * size[:, None]
    genes = rng.negative_binomial(2.0, 2.0 / (2.0 + mu)).astype(np.float32)

    # ATSEs: 2-4 junctions; a base PSI; differential ATSEs give each type one of two states, with
    # the pair (last two types) on different states for half of them.
    n_junc = 2 + rng.binomial(2, 0.3, size=n_events)
    codes = np.repeat(np.arange(n_events), n_junc)
    starts = np.concatenate([[0], np.cumsum(n_junc)[:-1]])
    is_ds = rng.random(n_events) < frac_ds
    type_psi = np.zeros((n_types, codes.size))
    ds_types = []
    for e in range(n_events):
        sl = slice(starts[e], starts[e] + n_junc[e])
        state_a = rng.dirichlet(np.full(n_junc[e], 1.5))
        psi = np.tile(state_a, (n_types, 1))
        moved = []
        if is_ds[e]:
            state_b = state_a.copy()
            i, j = rng.choice(n_junc[e], size=2, replace=False)
            shift = min(rng.uniform(0.3, 0.7), state_b[i] - 0.01) if state_b[i] > 0.31 else 0.0
            if shift < 0.3:  # flat base: put most of the mass on j instead
                state_b = np.full(n_junc[e], 0.1 / (n_junc[e] - 1))
                state_b[j] = 0.9
            else:
                state_b[i] -= shift
                state_b[j] += shift
            if rng.random() < 0.5:
                moved = [n_types - 1]
            else:
                moved = sorted(rng.choice(n_types, size=int(rng.integers(1, 4)), replace=False).tolist())
            for t in moved:
                psi[t] = state_b
        type_psi[:, sl] = psi
        ds_types.append(",".join(types[t] for t in moved))
    # Per-ATSE DM concentration varying over a 20-fold range (log-uniform 10 .. 200; the project's
    # simulator gives every ATSE one value).
    conc = np.exp(rng.uniform(np.log(10.0), np.log(200.0), size=n_events))
    # Coverage: heavy-tailed cell depth (gamma × Pareto), gamma ATSE expression; calibrated rate.
    depth = rng.gamma(2.0, 0.5, size=n_cells) * (1.0 + rng.pareto(3.0, size=n_cells))
    expr = rng.gamma(0.8, 1.0, size=n_events)
    weight = depth[:, None] * expr[None, :]
    lo, hi = 1e-6, 1e3
    for _ in range(60):
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.mean(1 - np.exp(-mid * weight)) < observed_fraction else (lo, mid)
    observed = rng.random(weight.shape) < 1 - np.exp(-mid * weight)
    ci, ei = np.nonzero(observed)
    # Reads of an observed pair: 1 + geometric with mean growing with the pair's weight.
    mean_extra = 5.0 * weight[ci, ei] / weight[ci, ei].mean()
    totals = 1 + rng.geometric(1.0 / (1.0 + mean_extra)) - 1
    rows, cols, vals = [], [], []
    for m in np.unique(n_junc):
        sel = n_junc[ei] == m
        c, e, n = ci[sel], ei[sel], totals[sel]
        jcols = starts[e][:, None] + np.arange(m)[None, :]
        alpha = np.maximum(type_psi[cell_type[c][:, None], jcols] * conc[e][:, None], 1e-3)
        p = rng.gamma(alpha)
        p /= p.sum(axis=1, keepdims=True)
        counts = rng.multinomial(n, p)
        nz_r, nz_c = np.nonzero(counts)
        rows.append(c[nz_r])
        cols.append(jcols[nz_r, nz_c])
        vals.append(counts[nz_r, nz_c])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    k = sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(n_cells, codes.size))
    event_ids = np.array([f"G{e:05d}" for e in range(n_events)])
    gene_of_event = rng.integers(0, n_genes, size=n_events)
    junctions = pd.DataFrame(
        {
            "event_id": event_ids[codes],
            "gene_id": [f"GG{g:05d}" for g in gene_of_event[codes]],
            "is_ds": is_ds[codes] & (np.ptp(type_psi, axis=0) > 1e-9),
        },
        index=pd.Index([f"J{j:06d}" for j in range(codes.size)], name="junction_id"),
    )
    for t, name in enumerate(types):
        junctions[f"true_psi_{name}"] = type_psi[t]
    events = pd.DataFrame(
        {"is_ds": is_ds, "ds_types": ds_types, "concentration": conc},
        index=pd.Index(event_ids, name="event_id"),
    )
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical([types[t] for t in cell_type], categories=types),
            "batch": pd.Categorical([f"b{b}" for b in batch]),
        },
        index=pd.Index([f"cell{c:05d}" for c in range(n_cells)], name="cell_id"),
    )
    gene_table = pd.DataFrame(
        {"gene_name": [f"GG{g}" for g in range(n_genes)]},
        index=pd.Index([f"GG{g:05d}" for g in range(n_genes)], name="gene_id"),
    )
    return SimulatedData(
        gene_counts=sp.csr_matrix(genes),
        junction_counts=k,
        obs=obs,
        genes=gene_table,
        junctions=junctions,
        events=events,
        type_psi=type_psi,
        params={
            "generator": "bench/droplet.py",
            "n_cells": n_cells,
            "n_events": n_events,
            "observed_fraction": observed_fraction,
            "seed": seed,
        },
    )
