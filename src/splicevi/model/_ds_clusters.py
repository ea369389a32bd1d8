"""Differential splicing of clusters found on the same reads: detection and the held-out-reads test.

Groups that are clusters of the model's own latent were chosen *because* their cells differ in the
reads; testing them on those reads finds differences even where nothing differs (double dipping).
:func:`groups_look_like_clusters` recognises such groups (the latent predicts them almost perfectly),
and :func:`heldout_ds` tests them on reads the clustering never saw: the reads held out by
:func:`splicevi.data.thinning.split_reads`, with the clusters found on the rest
(:func:`fit_part_latent`). The estimator is that of :mod:`splicevi.stats.differential` with the
held-out reads as the observed data: by default without a model term (a cell-level test), optionally
with the PSI decoded from each cell's fit-part latent as the model term. Given the fit part, the
held-out reads of an unchanged junction are independent of the clusters, so the test keeps its level.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.layers import ATSE_COUNTS, JUNCTION_COUNTS, JUNCTION_RATIO, PSI_MASK, splicing_layers
from ..data.thinning import HELDOUT_LAYER, has_heldout_genes, heldout_gene_parts, heldout_parts
from ..stats import differential as dstats
from ..stats import read_test

#: Neighbours of the kNN classifier of :func:`groups_look_like_clusters`.
DETECT_NEIGHBORS = 15
#: Balanced kNN accuracy on the latent from which two groups are taken for clusters of it.
DETECT_THRESHOLD = 0.8
#: Cells the detection looks at, at most (a fixed random subset beyond; keeps it to seconds).
DETECT_MAX_CELLS = 5000
#: Name of the test in the tables (column ``test``, ``attrs["splicevi_ds"]``).
TEST_NAME = "held-out reads (count splitting)"
#: Cells decoded at once by :func:`heldout_ds`.
CHUNK_CELLS = 1024

# Registered setup argument of each splicing layer -> the layer of the data contract it holds.
_LAYER_ARGS = {
    "junc_counts_layer": JUNCTION_COUNTS,
    "atse_counts_layer": ATSE_COUNTS,
    "junc_ratio_layer": JUNCTION_RATIO,
    "psi_mask_layer": PSI_MASK,
}


def _model_adata(model, adata):
    """``None`` when ``adata`` is the model's own data (so per-cell options keep working)."""
    return None if adata is None or adata is getattr(model, "adata", None) else adata


def _splicing_anndata(model, adata):
    """The splicing AnnData of ``adata`` (the model's data when ``None``)."""
    data = model.adata if adata is None else adata
    mod = getattr(data, "mod", None)
    if mod is None:
        raise ValueError(
            "held-out reads need the MuData layout (a 'splicing' modality); set the model up with "
            "SPLICEVI.setup_mudata"
        )
    name = model._modality_of("junc_counts_layer") or model._modality_of("junc_ratio_layer") or "splicing"
    if name not in mod:
        raise ValueError(f"the data have no splicing modality {name!r} (modalities: {list(mod)})")
    return mod[name]


def _expression_anndata(model, adata):
    """The expression AnnData of ``adata`` registered with the model, or ``None`` (no genes)."""
    data = model.adata if adata is None else adata
    mod = getattr(data, "mod", None)
    name = model._modality_of("rna_layer")
    if mod is None or name is None or name not in mod or model.module.n_input_genes == 0:
        return None
    return mod[name]


@contextmanager
def _fit_genes(model, adata):
    """The data with the model's gene counts replaced by their fit part (where held out), restored after.

    Without held-out gene counts (data split before gene thinning existed) nothing is swapped.
    """
    rna = _expression_anndata(model, adata)
    if rna is None or not has_heldout_genes(rna):
        yield
        return
    layer = model.adata_manager.registry.get("setup_args", {}).get("rna_layer")
    fit, _, _ = heldout_gene_parts(rna, layer)
    saved = rna.X if layer is None else rna.layers[layer]
    try:
        if layer is None:
            rna.X = fit
        else:
            rna.layers[layer] = fit
        yield
    finally:
        if layer is None:
            rna.X = saved
        else:
            rna.layers[layer] = saved


@contextmanager
def _fit_reads(model, adata, fit: sp.csr_matrix):
    """The data with the model's splicing layers replaced by those of the fit reads, restored after.

    The layers are swapped in place (no copy of the data): the model's loaders read the registered
    layers by name when they are made, so every loader made inside the block sees the fit reads.
    The gene counts are replaced by their fit part too where the data hold
    held-out gene counts (:func:`splicevi.data.thinning.split_genes`), so that a latent computed
    inside the block has seen neither held-out part.
    """
    spl = _splicing_anndata(model, adata)
    setup = model.adata_manager.registry.get("setup_args", {})
    codes = model.module.junc2atse.cpu().numpy()
    derived = None
    saved = {}
    with _fit_genes(model, adata):
        try:
            for arg, kind in _LAYER_ARGS.items():
                name = setup.get(arg)
                if not name or name not in spl.layers:
                    continue
                if derived is None:
                    derived = splicing_layers(fit, codes)
                saved[name] = spl.layers[name]
                spl.layers[name] = derived[kind]
            if not saved:
                raise ValueError("the model registered no junction count layer to replace with the fit reads")
            yield
        finally:
            for name, value in saved.items():
                spl.layers[name] = value


def junction_concentration(model) -> np.ndarray:
    """The model's Dirichlet-multinomial concentration per junction (its ATSE's), for :func:`split_reads`.

    Raises
    ------
    ValueError
        For a binomial splicing likelihood (no concentration): split by moments instead.
    """
    return model.module.splicing_concentration_per_junction().detach().cpu().double().numpy()


def fit_part_latent(
    model, adata=None, batch_size: int | None = None, indices: np.ndarray | None = None
) -> np.ndarray:
    """Latent of every cell computed from the fit part of its junction reads and gene counts (for clustering).

    The reads must have been split by :func:`splicevi.data.thinning.split_reads` (or
    :func:`~splicevi.data.thinning.split_data`, which splits the gene counts too); the latent is the
    model's joint posterior mean with the held-out reads (and held-out gene counts, where the data
    hold them) removed, so clusters found on it (e.g.
    ``sc.pp.neighbors(mdata, use_rep=...)``, ``sc.tl.leiden``) can be tested on the held-out reads.

    Parameters
    ----------
    model
        A trained SPLICEVI.
    adata
        Its data (``None``: the training data).
    batch_size
        Minibatch size.
    indices
        Cells to encode (all when ``None``).

    Returns
    -------
    np.ndarray
        Cells × latent dimensions.
    """
    spl = _splicing_anndata(model, adata)
    fit, _, _ = heldout_parts(spl, layer=_registered_counts_layer(model))
    with _fit_reads(model, adata, fit):
        return model.get_latent_representation(
            _model_adata(model, adata), indices=indices, batch_size=batch_size
        )


def _registered_counts_layer(model) -> str:
    return model.adata_manager.registry.get("setup_args", {}).get("junc_counts_layer") or JUNCTION_COUNTS


def groups_look_like_clusters(model, adata, cells1: np.ndarray, cells2: np.ndarray) -> tuple[bool, float]:
    """Whether two groups look like clusters of the model's own latent, and the score used.

    The score is the balanced leave-one-out accuracy of a kNN classifier (``DETECT_NEIGHBORS``
    neighbours on the joint latent, each group's vote compared with its share of the cells, so a
    small group against "the rest" is not out-voted): about 0.5 for labels unrelated to the latent,
    near 1 for clusters of it. Where the data hold held-out reads, the latent of the fit part
    (:func:`fit_part_latent`) is scored too and the higher score is kept. Groups score ``DETECT_THRESHOLD`` or more are taken for clusters.
    Well-separated annotations (cell types the model resolves perfectly) score high too; for them
    the caller can ask for ``design='labels'``.

    Parameters
    ----------
    model
        A trained SPLICEVI.
    adata
        Its data (``None``: the training data).
    cells1, cells2
        Integer indices of the two groups' cells.

    Returns
    -------
    tuple
        ``(looks_like_clusters, score)``.
    """
    from sklearn.neighbors import NearestNeighbors

    cells1, cells2 = np.asarray(cells1, dtype=np.int64), np.asarray(cells2, dtype=np.int64)
    cells = np.r_[cells1, cells2]
    label = np.r_[np.zeros(cells1.size, dtype=bool), np.ones(cells2.size, dtype=bool)]
    if cells1.size < 2 or cells2.size < 2:
        return False, float("nan")
    if cells.size > DETECT_MAX_CELLS:
        pick = np.sort(np.random.default_rng(0).choice(cells.size, DETECT_MAX_CELLS, replace=False))
        cells, label = cells[pick], label[pick]
        if label.all() or not label.any():
            return False, float("nan")
    latents = [model.get_latent_representation(_model_adata(model, adata), indices=cells)]
    if has_heldout_reads(model, adata):
        # Clusters found on the fit part of the reads (the valid recipe, the workflow's clusters) are
        # sharper in the fit part's latent than in the all-reads latent.
        latents.append(fit_part_latent(model, adata, indices=cells))
    k = min(DETECT_NEIGHBORS, cells.size - 1)
    score = 0.0
    for latent in latents:
        _, nbr = NearestNeighbors(n_neighbors=k + 1).fit(latent).kneighbors(latent)
        share = label[nbr[:, 1:]].mean(axis=1)  # neighbours in group 2 (the cell itself left out)
        predicted = share > label.mean()
        score = max(score, 0.5 * (np.mean(predicted[label]) + np.mean(~predicted[~label])))
    return bool(score >= DETECT_THRESHOLD), float(score)


def has_heldout_reads(model, adata) -> bool:
    """Whether the data hold held-out junction reads (:func:`splicevi.data.thinning.split_reads`)."""
    try:
        return HELDOUT_LAYER in _splicing_anndata(model, adata).layers
    except ValueError:  # AnnData layout: no held-out reads
        return False


def _observed_entries(layers: dict[str, sp.csr_matrix], rows: np.ndarray):
    """(row in the chunk, junction, k, n) at the observed entries of the given cells."""
    n = layers[ATSE_COUNTS][rows].tocoo()
    k = layers[JUNCTION_COUNTS][rows].tocoo()  # same pattern and order as n
    return n.row, n.col, k.data.astype(np.float64), n.data.astype(np.float64)


#: Whether the held-out test also calls what the reads-only quasi-binomial test of the held-out reads
#: calls (:mod:`splicevi.stats.read_test`, as the labels design's reads-only rule; stop 30).
READS_RULE = True


def heldout_ds(
    model,
    adata,
    cells1: np.ndarray,
    cells2: np.ndarray,
    *,
    delta: float,
    fdr_target: float,
    level: str = "junction",
    mode: Literal["change", "vanilla"] = "change",
    fdr_method: str = "bh",
    estimator: Literal["cells", "model"] = "cells",
    batch_size: int | None = None,
    all_stats: bool = True,
    **kwargs,
) -> pd.DataFrame:
    """Differential splicing valid for groups chosen on the same data: test on held-out reads.

    The reads must have been split (:func:`splicevi.data.thinning.split_reads`) and the groups
    found on the fit part only (:func:`fit_part_latent`); the workflow does both for its cluster
    contrasts. Each group's mean PSI is estimated by the estimator of
    :mod:`splicevi.stats.differential` with the **held-out** reads as the observed ``k / n`` (and,
    with ``estimator="model"``, the PSI decoded from the cell's **fit-part** latent as the model
    term), so nothing the groups were chosen on enters the test.

    Parameters
    ----------
    model
        A trained SPLICEVI.
    adata
        Its registered data (MuData; ``None``: the training data).
    cells1, cells2
        Integer indices of the two groups' cells.
    delta, fdr_target, level, mode
        As :meth:`SPLICEVI.differential_splicing`.
    fdr_method
        ``bh`` (default): Benjamini–Hochberg on ΔPSI = 0 with the confident |ΔPSI| ≥ delta
        filter (in ``change`` mode), as the labels design's rule without its lfdr part: the test
        above, and the reads-only quasi-binomial test of the held-out reads (:data:`READS_RULE`);
        ``interval``: Benjamini–Hochberg on the interval null ``|ΔPSI| ≤ delta`` of both (valid
        too, fewer true calls, see :func:`clusters_fdr_method`); ``lfdr``.
    estimator
        ``cells`` (default): cell-level test on the held-out reads (each group's mean of the cells'
        held-out PSI, weighted by their effective reads, cells as units; no decoding, so it costs
        little at any size); ``model``: model-assisted estimate (PSI decoded from the fit part's
        latent + held-out residuals). On ``bench/ds_clusters.py`` both keep the null and ``cells``
        calls slightly more true junctions: a latent from half the reads adds more noise than it
        explains.
    batch_size
        Minibatch size of the decoding.
    all_stats
        Keep ``emp_psi1``, ``emp_psi2``, ``emp_effect``.
    **kwargs
        Further options of the labels path are accepted and ignored when they do not apply here
        (``norm_splicing_function``, ``n_samples``, ``seed``, ``silent``); any other raises
        ``TypeError``.

    Returns
    -------
    pd.DataFrame
        The standard DS table (see :meth:`SPLICEVI.differential_splicing`) with the columns
        ``design`` ("clusters") and ``test`` (:data:`TEST_NAME`), and ``attrs["splicevi_ds"]``.

    Raises
    ------
    ValueError
        When the data have no held-out reads (the message says how to make them) or a group is empty.
    """
    unknown = set(kwargs) - {"norm_splicing_function", "n_samples", "seed", "silent", "batch_correction"}
    if unknown:
        raise TypeError(f"heldout_ds() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if estimator not in ("model", "cells"):
        raise ValueError(f"estimator must be 'model' or 'cells', got {estimator!r}")
    if level not in ("junction", "event"):
        raise ValueError(f"level must be 'junction' or 'event', got {level!r}")
    cells1, cells2 = np.asarray(cells1, dtype=np.int64), np.asarray(cells2, dtype=np.int64)
    if cells1.size == 0 or cells2.size == 0:
        raise ValueError("both groups need at least one cell")
    spl = _splicing_anndata(model, adata)
    fit, held, record = heldout_parts(spl, layer=_registered_counts_layer(model))
    module = model.module
    codes = module.junc2atse.cpu().numpy()
    held_layers = splicing_layers(held, codes)
    held_layers = {key: held_layers[key] for key in (JUNCTION_COUNTS, ATSE_COUNTS)}
    # Weights of the held-out reads: their Dirichlet-multinomial overdispersion. DM thinning leaves
    # the held-out part with concentration fraction·c (binomial thinning: c).
    rho = None
    try:
        conc = module.splicing_concentration_per_junction().detach().cpu().double().numpy()
        if record.get("method", "dm") == "dm":
            conc = conc * float(record.get("fraction", 0.5))
        rho = 1.0 / (1.0 + conc)
    except ValueError:  # binomial likelihood
        rho = None
    cells = np.r_[cells1, cells2]
    stratum = np.r_[np.zeros(cells1.size, dtype=np.int64), np.ones(cells2.size, dtype=np.int64)]
    n_j = module.n_input_junctions
    # The cells' overdispersion on the held-out reads (strata summed, so the groups' difference does
    # not count) and, for the reads-only rule, the effective-read weighted sums under it.
    reads, rho_cells = read_test.read_sums(
        lambda: (
            (start, *_observed_entries(held_layers, cells[start : start + CHUNK_CELLS]))
            for start in range(0, cells.size, CHUNK_CELLS)
        ),
        stratum,
        2,
        n_j,
        weighted=READS_RULE,
    )
    if dstats.CELL_OVERDISPERSION_WEIGHTS:
        # As the labels test: where the groups' cells differ more than the reads' overdispersion,
        # neither the weights nor the variance the model expects may let a few deep cells stand for
        # the group.
        rho = rho_cells if rho is None else np.maximum(rho, rho_cells)
    mom = dstats.GroupMoments.zeros(2, n_j)
    if estimator == "cells":
        k_sum = np.asarray(held_layers[JUNCTION_COUNTS][cells].sum(axis=0)).ravel()
        n_sum = np.asarray(held_layers[ATSE_COUNTS][cells].sum(axis=0)).ravel()
        flat = np.where(n_sum > 0, k_sum / np.maximum(n_sum, 1.0), 0.5).astype(np.float32)
    # The fit reads are swapped in only for decoding (the cell-level estimator decodes nothing).
    swap = _fit_reads(model, adata, fit) if estimator == "model" else nullcontext()
    with swap:
        for start in range(0, cells.size, CHUNK_CELLS):
            chunk = cells[start : start + CHUNK_CELLS]
            if estimator == "model":
                p = model.get_normalized_splicing(
                    _model_adata(model, adata), indices=chunk, batch_size=batch_size, return_numpy=True
                )
            else:
                p = np.broadcast_to(flat, (chunk.size, n_j))
            rows, cols, k, n = _observed_entries(held_layers, chunk)
            mom.add(stratum[start : start + CHUNK_CELLS], np.asarray(p), rows, cols, k, n, rho, None)
    one = np.array([1.0])
    by_reads = (
        read_test.read_test(
            reads, rho_cells, np.array([0]), one, np.array([1]), one, delta=delta if mode == "change" else 0.0
        )
        if READS_RULE
        else None
    )
    psi_null = dstats.null_psi(mom)  # the variance under the null, as the labels test
    g1 = dstats.group_estimate(mom.subset(np.array([0])), psi_null=psi_null)
    g2 = dstats.group_estimate(mom.subset(np.array([1])), psi_null=psi_null)
    test = dstats.difference_test(g1, g2, delta=delta, mode=mode)
    filt = delta if mode == "change" else 0.0  # the confident-effect filter of the bh rule
    table = dstats.junction_table(test, g1, g2, fdr_target, fdr_method, delta=filt, reads=by_reads)
    var = spl.var
    table.index = pd.Index(var.index, name="junction_id")
    table["junction_id"] = var.index.to_numpy()
    table["event_id"] = var["event_id"].to_numpy()
    table["gene_name"] = var["gene_name"].to_numpy() if "gene_name" in var else None
    if level == "event":
        table = dstats.event_level(table, codes, fdr_target=fdr_target, fdr_method=fdr_method, delta=filt)
    if not all_stats:
        table = table.drop(columns=[c for c in ("emp_psi1", "emp_psi2", "emp_effect") if c in table])
    table = dstats.sort_table(table, fdr_method)
    table["design"] = "clusters"
    table["test"] = TEST_NAME
    table.attrs["splicevi_ds"] = {
        "design": "clusters",
        "test": TEST_NAME,
        "reason": (
            f"groups tested on held-out reads ({record.get('method', 'dm')} split, "
            f"{record.get('fraction', 0.5):.0%} of the reads held out, seed {record.get('seed')}); "
            f"estimator: {estimator}"
        ),
    }
    return table


def clusters_fdr_method(fdr_method: str) -> str:
    """The call rule of the held-out test for a user's ``fdr_method``.

    ``bh`` and ``bh_lfdr`` mean ``bh`` here: Benjamini–Hochberg on ΔPSI = 0 with the confident
    |ΔPSI| ≥ delta filter, over all contrasts of one call (:func:`family_calls_ds`). The lfdr calls
    are left out: their posterior is fitted per contrast and does not form one family. With the
    filter, the point-null rule keeps null data free of calls on the held-out reads and finds
    about twice the true junctions of the interval test (stop 28, ``bench/results/ds_clusters_stop28.md``).
    An earlier stop found the point-null rule anti-conservative there; :func:`heldout_ds` then
    applied no effect filter to it (the split leaves the parts slightly dependent at strong
    overdispersion, and small dependence-made differences pass a bare point null).
    """
    return "bh" if fdr_method in ("bh", "bh_lfdr") else fdr_method


def family_calls_ds(
    tables: list[pd.DataFrame], fdr_target: float, fdr_method: str = "bh_lfdr", delta: float = 0.1
) -> list[pd.DataFrame]:
    """The held-out contrasts of one call, their calls re-adjusted as one family (re-sorted copies).

    As :func:`splicevi.model._de_clusters.family_calls_de`: the p-values of every contrast go
    through one Benjamini–Hochberg, so that on data without any difference no contrast has a call
    with probability at least 1 − target. Under ``bh`` (see :func:`clusters_fdr_method`) these are
    the point-null p-values and a call also needs ``abs_dpsi_bound ≥ delta`` (``delta`` 0: no
    filter, as in ``vanilla`` mode); under ``interval``, the interval-null ones. The reads-only
    rule's p-values (:data:`READS_RULE`) form a second family, adjusted the same way, and its calls
    (with ``reads_abs_dpsi_bound ≥ delta`` under ``bh``) join the others. Under ``lfdr``, and for a
    single table, the tables are returned unchanged.
    """
    fdr_method = clusters_fdr_method(fdr_method)
    if len(tables) < 2 or fdr_method not in ("bh", "interval"):
        return tables

    def family_q(column):
        """One BH over the column's p-values of every table; None when a table lacks the column."""
        if not all(column in t for t in tables):
            return [None] * len(tables)
        with np.errstate(divide="ignore"):
            return dstats.family_bh_qvalues([np.log(t[column].to_numpy(dtype=np.float64)) for t in tables])

    interval = fdr_method == "interval" and all("interval_pvalue" in t for t in tables)
    qs = family_q("interval_pvalue" if interval else "pvalue")
    # The reads-only rule of the held-out test (READS_RULE) forms its own family, in the same way.
    qs_reads = family_q("reads_interval_pvalue" if interval else "reads_pvalue")
    out = []
    for table, q, q_reads in zip(tables, qs, qs_reads, strict=True):
        table = table.copy()
        table["interval_qvalue" if interval else "qvalue"] = q
        if q_reads is not None:
            table["reads_interval_qvalue" if interval else "reads_qvalue"] = q_reads
        if fdr_method == "bh":
            # The bh rule of every table, on the confident changes the table already holds.
            bound = table["reads_abs_dpsi_bound"] if "reads_abs_dpsi_bound" in table else None
            table["is_ds_fdr"] = dstats.call_rows(
                q,
                table["abs_dpsi_bound"].to_numpy(dtype=np.float64),
                fdr_target,
                delta,
                reads_qvalue=None if bound is None else q_reads,
                reads_bound=None if bound is None else bound.to_numpy(dtype=np.float64),
            )
        else:
            table["is_ds_fdr"] = dstats.fdr_calls(q, fdr_target) | (
                dstats.fdr_calls(q_reads, fdr_target) if q_reads is not None else False
            )
        info = dict(table.attrs.get("splicevi_ds", {}))
        info["reason"] = (
            f"{info.get('reason', '')}; q-values over all {len(tables)} cluster contrasts together"
        )
        table.attrs["splicevi_ds"] = info
        out.append(dstats.sort_table(table, fdr_method))
    return out
