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

Gene counts are split the same way for differential expression of the clusters (Neufeld et al.
2023: negative-binomial thinning). A gene's count in a cell is negative binomial, a Poisson draw
around a gamma with shape ``θ`` (the inverse dispersion) and the cell's own mean; the held-out count
is a beta-binomial draw with shapes ``f θ`` and ``(1 − f) θ``, which splits the gamma into two
independent gammas, so the two parts are independent negative-binomial counts with the cell's means
``f μ`` and ``(1 − f) μ``. A binomial (Poisson) split keeps both parts tied to the cell's own gamma
draw: for overdispersed counts they stay positively correlated, and clusters found on one part show
up in the other. ``θ`` is estimated per gene by moments around each cell's depth-scaled mean
(:func:`gene_inverse_dispersion`), or given (e.g. a trained model's).

The held-out parts are stored as the layer :data:`HELDOUT_LAYER` of the splicing modality and
:data:`HELDOUT_GENE_LAYER` of the expression modality (the fit parts are the counts minus them),
and the splits' parameters in each modality's ``uns[SPLIT_KEY]``. :func:`split_data` makes both
from one seed. The registered counts are left untouched: a model trained on all counts stays valid
for display.
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
#: Layer of the expression modality with the held-out gene counts (cells × genes, integer).
HELDOUT_GENE_LAYER = "heldout_gene_counts"
#: Gene split methods: ``nb`` (negative-binomial, i.e. beta-binomial, thinning) or ``binomial``.
GENE_SPLIT_METHODS = ("nb", "binomial")
#: Bounds of the per-gene inverse dispersion θ estimated by moments (the upper one: Poisson-like).
THETA_BOUNDS = (1e-2, 1e4)
#: The gene split that goes with each junction split method (:func:`split_data`).
GENE_METHOD_OF = {"dm": "nb", "binomial": "binomial"}


def atse_overdispersion(junction_counts: sp.spmatrix, codes: np.ndarray, min_cells: int = 10) -> np.ndarray:
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
    k = _integer_csr(junction_counts, "junction counts")
    data = k.data
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
        raise ValueError(
            f"the splicing data has no layer {layer!r} (layers: {sorted(spl.layers)}); give layer="
        )
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


def _integer_csr(counts, what: str) -> sp.csr_matrix:
    """A float64 CSR copy of non-negative integer counts (explicit zeros removed, indices sorted)."""
    # A copy: eliminate_zeros works in place and a dtype conversion can share the index arrays.
    x = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    x.eliminate_zeros()
    x.sort_indices()
    if x.data.size and (np.any(x.data < 0) or np.any(x.data != np.round(x.data))):
        raise ValueError(f"{what} must be non-negative integers to be split")
    return x


def gene_inverse_dispersion(gene_counts: sp.spmatrix, min_cells: int = 10) -> np.ndarray:
    """Negative-binomial inverse dispersion θ per gene, by moments around depth-scaled means.

    Each cell's mean of gene ``g`` is ``μ_cg = s_c m_g`` (``s_c`` the cell's total counts over
    their mean, ``m_g`` the gene's pooled rate), and ``Var = μ + μ² / θ``, so
    ``1 / θ_g = Σ_c [(x_cg − μ_cg)² − μ_cg] / Σ_c μ_cg²``. Genes seen in fewer than ``min_cells``
    cells, or with no excess variance (Poisson-like), get the upper bound of
    :data:`THETA_BOUNDS` (binomial thinning, valid for Poisson counts). Between-cell differences in
    expression (cell types) count as overdispersion here: θ is then underestimated, which errs
    towards slightly *negatively* dependent parts for those genes (a gene that differs between the
    clusters is tested on its held-out mean, which the split keeps unbiased).

    Parameters
    ----------
    gene_counts
        Cells × genes counts.
    min_cells
        Cells with a count a gene needs for its own estimate.

    Returns
    -------
    np.ndarray
        θ per gene, within :data:`THETA_BOUNDS`.
    """
    x = sp.csr_matrix(gene_counts, dtype=np.float64)
    depth = np.asarray(x.sum(axis=1)).ravel()
    s = depth / max(depth.mean(), 1e-12)
    m = np.asarray(x.sum(axis=0)).ravel() / max(s.sum(), 1e-12)
    # Σ (x − s m)² − s m = Σ x² − 2 m Σ s x + m² Σ s² − m Σ s, without densifying.
    sum_x2 = np.asarray(x.multiply(x).sum(axis=0)).ravel()
    sum_sx = np.asarray(x.T @ s).ravel()
    s2 = float(np.sum(s**2))
    excess = sum_x2 - 2.0 * m * sum_sx + m**2 * s2 - m * s.sum()
    den = m**2 * s2
    n_cells = np.diff(x.tocsc().indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(den > 0, excess / den, 0.0)
    own = np.clip(np.where(inv > 0, 1.0 / np.maximum(inv, 1e-300), THETA_BOUNDS[1]), *THETA_BOUNDS)
    supported = n_cells >= min_cells
    fallback = float(np.median(own[supported])) if supported.any() else 1.0
    return np.where(supported, own, fallback)


def thin_gene_counts(
    gene_counts: sp.spmatrix,
    fraction: float = 0.5,
    method: Literal["nb", "binomial"] = "nb",
    theta: np.ndarray | None = None,
    seed: int = 0,
) -> sp.csr_matrix:
    """Held-out part of the gene counts (cells × genes CSR, integer-valued float32).

    Parameters
    ----------
    gene_counts
        Cells × genes counts (non-negative integers).
    fraction
        Expected share of the counts held out, in (0, 1).
    method
        ``nb``: beta-binomial thinning with shapes ``fraction·θ`` and ``(1 − fraction)·θ`` (parts
        independent for negative-binomial counts with inverse dispersion θ); ``binomial``: each
        count held out with probability ``fraction`` (independent parts for Poisson counts only).
    theta
        Inverse dispersion per gene (``nb``; default :func:`gene_inverse_dispersion` of the data).
    seed
        Seed of the draw.

    Returns
    -------
    scipy.sparse.csr_matrix
        Held-out counts; the fit part is ``gene_counts`` minus it.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if method not in GENE_SPLIT_METHODS:
        raise ValueError(f"method must be one of {GENE_SPLIT_METHODS}, got {method!r}")
    x = _integer_csr(gene_counts, "gene counts")
    rng = np.random.default_rng(seed)
    counts = x.data.astype(np.int64)
    if method == "binomial":
        held = rng.binomial(counts, fraction)
    else:
        if theta is None:
            theta = gene_inverse_dispersion(x)
        theta = np.asarray(theta, dtype=np.float64).ravel()
        if theta.shape != (x.shape[1],) or not np.all(np.isfinite(theta) & (theta > 0)):
            raise ValueError(
                f"theta must hold one positive value per gene ({x.shape[1]}), got shape {theta.shape}"
            )
        shape = theta[x.indices]
        held = rng.binomial(counts, rng.beta(fraction * shape, (1.0 - fraction) * shape))
    out = sp.csr_matrix((held.astype(np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape)
    out.eliminate_zeros()
    return out


def split_genes(
    data,
    fraction: float = 0.5,
    method: Literal["nb", "binomial"] = "nb",
    seed: int = 0,
    layer: str | None = None,
    theta: np.ndarray | None = None,
) -> sp.csr_matrix:
    """Hold out part of every cell's gene counts, to test clusters found on the rest (DE).

    Writes the layer :data:`HELDOUT_GENE_LAYER` and ``uns[SPLIT_KEY]`` of the expression modality
    (``rna``); the counts themselves are not changed. :func:`split_data` splits both modalities.

    Parameters
    ----------
    data
        MuData with an ``rna`` modality, or the expression AnnData.
    fraction
        Expected share of the counts held out.
    method
        ``nb`` (default): negative-binomial thinning; ``binomial``: each count independently.
    seed
        Seed of the split.
    layer
        Layer with the gene counts (``None``: ``X``).
    theta
        Inverse dispersion per gene for ``nb`` (e.g. a trained model's); ``None``: moments.

    Returns
    -------
    scipy.sparse.csr_matrix
        The held-out counts (also stored in the layer).
    """
    mod = getattr(data, "mod", None)
    if mod is not None and "rna" not in mod:
        raise ValueError(f"the MuData has no 'rna' modality (modalities: {list(mod)})")
    rna = data if mod is None else mod["rna"]
    if layer is not None and layer not in rna.layers:
        raise ValueError(
            f"the expression data have no layer {layer!r} (layers: {sorted(rna.layers)}); give layer="
        )
    counts = rna.X if layer is None else rna.layers[layer]
    if counts is None:
        raise ValueError("the expression data have no X; give layer= (the layer with the gene counts)")
    held = thin_gene_counts(counts, fraction=fraction, method=method, theta=theta, seed=seed)
    rna.layers[HELDOUT_GENE_LAYER] = held
    rna.uns[SPLIT_KEY] = {
        "fraction": float(fraction),
        "method": method,
        "seed": int(seed),
        "layer": layer or "X",
        "theta": "moments" if theta is None else "given",
    }
    return held


def split_data(
    mdata,
    fraction: float = 0.5,
    method: Literal["dm", "binomial"] = "dm",
    seed: int = 0,
    concentration: np.ndarray | None = None,
    theta: np.ndarray | None = None,
    rna_layer: str | None = None,
) -> dict[str, sp.csr_matrix]:
    """Split the junction reads and, where the data have them, the gene counts, from one seed.

    The one call that makes held-out parts for clusters (``splicevi cluster --model`` uses it):
    junction reads by :func:`split_reads` (seed ``seed``), gene counts by :func:`split_genes`
    (an independent stream derived from ``seed``, so adding genes does not change the junction
    split). ``dm`` goes with negative-binomial thinning of the genes, ``binomial`` with binomial.

    Returns
    -------
    dict
        ``{"splicing": held-out reads, "rna": held-out gene counts}`` (``rna`` only with genes).
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"method must be one of {SPLIT_METHODS}, got {method!r}")
    out = {
        "splicing": split_reads(
            mdata, fraction=fraction, method=method, seed=seed, concentration=concentration
        )
    }
    mod = getattr(mdata, "mod", None)
    if mod is not None and "rna" in mod and mod["rna"].n_vars:
        out["rna"] = split_genes(
            mdata,
            fraction=fraction,
            method=GENE_METHOD_OF[method],
            seed=_gene_seed(seed),
            layer=rna_layer,
            theta=theta,
        )
        # The record names the shared seed (the gene stream is derived from it).
        mod["rna"].uns[SPLIT_KEY] = {**mod["rna"].uns[SPLIT_KEY], "seed": int(seed), "stream": "genes"}
    return out


def _gene_seed(seed: int) -> int:
    """Seed of the gene split, derived from the shared seed (a stream apart from the junctions')."""
    return int(np.random.SeedSequence([int(seed), 2]).generate_state(1)[0])


def has_heldout_genes(data) -> bool:
    """Whether the data hold held-out gene counts (:func:`split_genes`)."""
    mod = getattr(data, "mod", None)
    rna = data if mod is None else (mod["rna"] if "rna" in mod else None)
    return rna is not None and HELDOUT_GENE_LAYER in rna.layers


def heldout_gene_parts(data, layer: str | None = None) -> tuple[sp.csr_matrix, sp.csr_matrix, dict]:
    """Fit and held-out gene counts stored by :func:`split_genes`, and the split's record.

    Raises
    ------
    ValueError
        When the data have no held-out gene counts (with what makes them), or when the stored part
        does not fit the counts.
    """
    mod = getattr(data, "mod", None)
    rna = data if mod is None else (mod["rna"] if "rna" in mod else None)
    if rna is None or HELDOUT_GENE_LAYER not in rna.layers:
        raise ValueError(
            "these groups are clusters found on the same data, and testing their expression on the counts "
            "they were found on makes false calls (double dipping); the data have no held-out gene counts "
            f"(layer {HELDOUT_GENE_LAYER!r} of mdata['rna']) to test them on. Split the counts before "
            "clustering: `splicevi.data.split_data(mdata, seed=0)` (or rerun `splicevi cluster --model` "
            "with --heldout-fraction > 0), cluster on the fit part (`splicevi.model.fit_part_latent`) and "
            "call differential_expression again. If the groups come from annotations made without these "
            "counts (e.g. cell types), pass design='labels'."
        )
    record = dict(rna.uns.get(SPLIT_KEY, {}))
    name = record.get("layer", layer or "X")
    total = rna.X if name in (None, "X") else rna.layers.get(name)
    if total is None:
        raise ValueError(f"the held-out gene counts were split from {name!r}, which the data no longer have")
    fit, held = _fit_part(
        total, rna.layers[HELDOUT_GENE_LAYER], HELDOUT_GENE_LAYER, "gene counts", "split_data"
    )
    return fit, held, record


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
    fit, held = _fit_part(
        spl.layers[layer], spl.layers[HELDOUT_LAYER], HELDOUT_LAYER, "junction counts", "split_reads"
    )
    return fit, held, record


def _fit_part(total, held, held_layer: str, what: str, splitter: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """The fit part ``total − held`` and the held-out part, checked to belong to these counts.

    ``what`` names the counts and ``splitter`` the function that rewrites the split, in the errors
    (a held-out layer of another shape, or one holding more than the counts, comes from a split of
    other data, e.g. cells subset after splitting).
    """
    total = sp.csr_matrix(total, dtype=np.float32)
    held = sp.csr_matrix(held, dtype=np.float32)
    if held.shape != total.shape:
        raise ValueError(
            f"layer {held_layer!r} has shape {held.shape} but the {what} {total.shape}; "
            f"rerun splicevi.data.{splitter} on these data"
        )
    fit = (total - held).tocsr()
    fit.eliminate_zeros()
    if fit.nnz and fit.data.min() < 0:
        raise ValueError(
            f"layer {held_layer!r} holds more counts than the {what} somewhere; "
            f"rerun splicevi.data.{splitter} on these data"
        )
    return fit, held


def split_summary(held: sp.spmatrix, total: sp.spmatrix) -> pd.Series:
    """Share of reads and of observed entries that went to the held-out part (for logs)."""
    held, total = sp.csr_matrix(held), sp.csr_matrix(total)
    return pd.Series(
        {
            "reads_heldout": float(held.sum() / max(total.sum(), 1.0)),
            "entries_heldout": held.nnz / max(total.nnz, 1),
        }
    )
