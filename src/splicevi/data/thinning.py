"""Count splitting of junction reads: a part to find clusters on, a held-out part to test them.

Clusters found on the reads and then tested on the same reads "double dip": the clustering picks up
chance differences and the test reports them. Count splitting (data thinning; Neufeld, Gao & Witten
2022, Neufeld et al. 2023, Dharamshi et al. 2023) splits every count into two parts that are
*independent* when nothing differs, so clusters found on one part can be tested on the other.

Junction reads of an ATSE are Dirichlet-multinomial: a cell draws its own usage of the junctions
around the ATSE's PSI, then its reads. A plain binomial split of each count keeps both parts tied to
that cell's own usage, so they stay dependent. The Dirichlet-multinomial split draws each junction's
held-out reads from a beta-binomial whose shapes are ``f c p`` and ``(1 − f) c p`` (``f`` the
held-out fraction, ``c`` the ATSE's concentration, ``p`` the junction's overall PSI). Writing the
Dirichlet-multinomial as independent gamma–Poisson counts, that split turns each gamma into two
independent gammas (beta–gamma algebra), so given their totals the two parts are independent
Dirichlet-multinomial draws with concentrations ``(1 − f) c`` and ``f c``. The concentration is
estimated per ATSE from the data by moments around the pooled PSI (no model needed), so the split can
be made before or after training.

The held-out part is stored as the layer :data:`HELDOUT_LAYER` of the splicing modality (the fit part
is the junction counts minus it), and the split's parameters in ``uns[SPLIT_KEY]``. The registered
junction counts are left untouched: a model trained on all reads stays valid for display.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .layers import JUNCTION_COUNTS, atse_totals, event_codes, splicing_layers

#: Layer of the splicing modality with the held-out junction reads (cells × junctions, integer).
HELDOUT_LAYER = "heldout_junction_counts"
#: ``uns`` entry (of the splicing modality) recording how the reads were split.
SPLIT_KEY = "splicevi_split"
#: Split methods: ``dm`` (Dirichlet-multinomial thinning) or ``binomial`` (each read independently).
SPLIT_METHODS = ("dm", "binomial")
#: Bounds of the per-ATSE overdispersion ρ = 1 / (1 + c) estimated by moments.
RHO_BOUNDS = (1e-3, 0.95)


def atse_overdispersion(
    junction_counts: sp.spmatrix, codes: np.ndarray, min_cells: int = 10
) -> np.ndarray:
    """Dirichlet-multinomial overdispersion ρ = 1 / (1 + c) per junction, by moments per ATSE.

    For a cell with ``n`` reads in the ATSE, ``Var(k_j) = n p_j (1 − p_j) (1 + (n − 1) ρ)`` around
    the pooled PSI ``p_j``; summing squared deviations over the cells and junctions of an ATSE gives
    ρ. ATSEs with fewer than ``min_cells`` cells of at least two reads take the median of the others.

    Parameters
    ----------
    junction_counts
        Cells × junctions reads ``k``.
    codes
        ATSE code per junction (:func:`splicevi.data.layers.event_codes`).
    min_cells
        Cells with at least two reads an ATSE needs for its own estimate.

    Returns
    -------
    np.ndarray
        ρ per junction (the value of its ATSE), within :data:`RHO_BOUNDS`.
    """
    layers = splicing_layers(junction_counts, codes)
    n_mat, k_mat = layers["cell_by_cluster_matrix"].tocoo(), layers[JUNCTION_COUNTS].tocoo()
    cols = n_mat.col
    n = n_mat.data.astype(np.float64)
    k = k_mat.data.astype(np.float64)  # same pattern and order as n (both from splicing_layers)
    n_j = np.bincount(cols, weights=n, minlength=len(codes))
    k_j = np.bincount(cols, weights=k, minlength=len(codes))
    p = np.where(n_j > 0, k_j / np.maximum(n_j, 1.0), 0.5)
    v = p[cols] * (1.0 - p[cols])
    n_events = int(codes.max()) + 1 if len(codes) else 0
    e = codes[cols]
    dev = np.bincount(e, weights=(k - n * p[cols]) ** 2 - n * v, minlength=n_events)
    den = np.bincount(e, weights=n * (n - 1.0) * v, minlength=n_events)
    # Cells with >= 2 reads in the ATSE: every junction of an observed ATSE carries its n, so any
    # one junction's count of such cells is the ATSE's.
    per_junction = np.bincount(cols[n >= 2], minlength=len(codes))
    support = np.zeros(n_events, dtype=np.int64)
    np.maximum.at(support, codes, per_junction)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, dev / den, np.nan)
    ok = (support >= min_cells) & np.isfinite(rho)
    fallback = float(np.median(np.clip(rho[ok], *RHO_BOUNDS))) if ok.any() else 0.05
    rho = np.clip(np.where(ok, rho, fallback), *RHO_BOUNDS)
    return rho[codes]


def thin_counts(
    junction_counts: sp.spmatrix,
    codes: np.ndarray,
    fraction: float = 0.5,
    method: Literal["dm", "binomial"] = "dm",
    rho: np.ndarray | None = None,
    seed: int = 0,
) -> sp.csr_matrix:
    """Held-out part of the junction reads (cells × junctions CSR, integer-valued float32).

    Parameters
    ----------
    junction_counts
        Cells × junctions reads ``k`` (non-negative integers).
    codes
        ATSE code per junction.
    fraction
        Expected share of the reads held out, in (0, 1).
    method
        ``dm``: beta-binomial thinning with shapes ``fraction·c·p`` and ``(1 − fraction)·c·p``
        (independent parts under the Dirichlet-multinomial); ``binomial``: each read held out
        with probability ``fraction`` (parts dependent through each cell's own usage).
    rho
        Overdispersion per junction (``dm``; default :func:`atse_overdispersion` of the data).
    seed
        Seed of the draw (same seed, same data: same split).

    Returns
    -------
    scipy.sparse.csr_matrix
        Held-out reads; the fit part is ``junction_counts`` minus it.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if method not in SPLIT_METHODS:
        raise ValueError(f"method must be one of {SPLIT_METHODS}, got {method!r}")
    # A copy: eliminate_zeros works in place and a dtype conversion can share the index arrays.
    k = sp.csr_matrix(junction_counts, dtype=np.float64, copy=True)
    k.eliminate_zeros()
    k.sort_indices()
    data = k.data
    if data.size and (np.any(data < 0) or np.any(data != np.round(data))):
        raise ValueError("junction counts must be non-negative integers to be split")
    rng = np.random.default_rng(seed)
    reads = data.astype(np.int64)
    if method == "binomial":
        held = rng.binomial(reads, fraction)
    else:
        if rho is None:
            rho = atse_overdispersion(k, codes)
        conc = 1.0 / np.asarray(rho, dtype=np.float64) - 1.0
        n_j = np.asarray(atse_totals(k, codes).sum(axis=0)).ravel()
        k_j = np.asarray(k.sum(axis=0)).ravel()
        # Overall PSI of the junction; a floor keeps the beta shapes positive (a junction seen in one
        # cell only still gets a proper split).
        p = np.clip(np.where(n_j > 0, k_j / np.maximum(n_j, 1.0), 0.5), 1e-3, 1.0)
        shape = conc[k.indices] * p[k.indices]
        theta = rng.beta(fraction * shape, (1.0 - fraction) * shape)
        held = rng.binomial(reads, theta)
    out = sp.csr_matrix((held.astype(np.float32), k.indices.copy(), k.indptr.copy()), shape=k.shape)
    out.eliminate_zeros()
    return out


def _splicing_modality(data):
    """The splicing AnnData of a MuData (modality ``splicing``) or the AnnData itself."""
    mod = getattr(data, "mod", None)
    if mod is None:
        return data
    if "splicing" not in mod:
        raise ValueError(f"the MuData has no 'splicing' modality (modalities: {list(mod)})")
    return mod["splicing"]


def split_reads(
    data,
    fraction: float = 0.5,
    method: Literal["dm", "binomial"] = "dm",
    seed: int = 0,
    layer: str = JUNCTION_COUNTS,
    event_key: str = "event_id",
    concentration: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Hold out part of every cell's junction reads, to test clusters found on the rest.

    Call it before clustering. Find clusters on the fit part (for a trained model:
    :func:`splicevi.model._ds_clusters.fit_part_latent`), then test them with
    ``model.differential_splicing(..., design="clusters")``, which uses the held-out part only.
    Writes the layer :data:`HELDOUT_LAYER` and ``uns[SPLIT_KEY]`` of the splicing modality; the
    junction counts themselves are not changed.

    Parameters
    ----------
    data
        MuData with a ``splicing`` modality, or the splicing AnnData.
    fraction
        Expected share of the reads held out for the test (0.5: as many to find clusters as to test).
    method
        ``dm`` (default): Dirichlet-multinomial thinning, with the overdispersion of each ATSE
        estimated from the data (parts independent where nothing differs); ``binomial``: each
        read independently (parts stay dependent through each cell's own junction usage).
    seed
        Seed of the split (same seed and data: the same split).
    layer
        Layer with the junction counts.
    event_key
        ``var`` column with each junction's ATSE.
    concentration
        Dirichlet-multinomial concentration per junction for ``dm`` (e.g. a trained model's,
        :func:`splicevi.model.junction_concentration`); ``None``: moments of the data per ATSE.

    Returns
    -------
    scipy.sparse.csr_matrix
        The held-out reads (also stored in the layer).
    """
    spl = _splicing_modality(data)
    if layer not in spl.layers:
        raise ValueError(f"the splicing data has no layer {layer!r} (layers: {sorted(spl.layers)}); give layer=")
    if event_key not in spl.var:
        raise ValueError(f"the splicing data has no var[{event_key!r}] (the ATSE of each junction)")
    codes, _ = event_codes(spl.var[event_key])
    rho = None
    if concentration is not None:
        concentration = np.asarray(concentration, dtype=np.float64).ravel()
        if concentration.shape != (spl.n_vars,) or not np.all(concentration > 0):
            raise ValueError(
                f"concentration must hold one positive value per junction ({spl.n_vars}), got shape {concentration.shape}"
            )
        rho = 1.0 / (1.0 + concentration)
    held = thin_counts(spl.layers[layer], codes, fraction=fraction, method=method, rho=rho, seed=seed)
    spl.layers[HELDOUT_LAYER] = held
    spl.uns[SPLIT_KEY] = {
        "fraction": float(fraction),
        "method": method,
        "seed": int(seed),
        "layer": layer,
        "concentration": "moments" if concentration is None else "given",
    }
    return held


def heldout_parts(data, layer: str = JUNCTION_COUNTS) -> tuple[sp.csr_matrix, sp.csr_matrix, dict]:
    """Fit and held-out reads stored by :func:`split_reads`, and the split's record.

    Raises
    ------
    ValueError
        When the data have no held-out reads (with the call that makes them), or when the stored
        part does not fit the junction counts (e.g. cells or junctions were subset differently).
    """
    spl = _splicing_modality(data)
    if HELDOUT_LAYER not in spl.layers:
        raise ValueError(
            "these groups look like clusters found on the same reads, and testing them on those reads "
            "makes false calls (double dipping); the data have no held-out reads to test them on. "
            "Split the reads before clustering: `splicevi.data.split_reads(mdata, seed=0)`, then "
            "cluster on the fit part (`mdata.obsm['X_fit'] = splicevi.model.fit_part_latent(model, mdata)`, "
            "`sc.pp.neighbors(mdata, use_rep='X_fit')`, `sc.tl.leiden(mdata)`) and call "
            "differential_splicing again (the workflow does this for its cluster contrasts). "
            "If the groups come from annotations made without these reads (e.g. cell types), "
            "pass design='labels'."
        )
    record = dict(spl.uns.get(SPLIT_KEY, {}))
    layer = record.get("layer", layer)
    if layer not in spl.layers:
        raise ValueError(f"the held-out reads were split from layer {layer!r}, which the data no longer have")
    total = sp.csr_matrix(spl.layers[layer], dtype=np.float32)
    held = sp.csr_matrix(spl.layers[HELDOUT_LAYER], dtype=np.float32)
    if held.shape != total.shape:
        raise ValueError(
            f"layer {HELDOUT_LAYER!r} has shape {held.shape} but the junction counts {total.shape}; "
            "rerun splicevi.data.split_reads on these data"
        )
    fit = (total - held).tocsr()
    fit.eliminate_zeros()
    if fit.nnz and fit.data.min() < 0:
        raise ValueError(
            f"layer {HELDOUT_LAYER!r} holds more reads than the junction counts somewhere; "
            "rerun splicevi.data.split_reads on these data"
        )
    return fit, held, record


def split_summary(held: sp.spmatrix, total: sp.spmatrix) -> pd.Series:
    """Share of reads and of observed entries that went to the held-out part (for logs)."""
    held, total = sp.csr_matrix(held), sp.csr_matrix(total)
    return pd.Series({"reads_heldout": float(held.sum() / max(total.sum(), 1.0)), "entries_heldout": held.nnz / max(total.nnz, 1)})
