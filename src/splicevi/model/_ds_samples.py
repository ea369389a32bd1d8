"""Differential splicing of groups that are unions of samples: pseudobulk over samples.

Used by :meth:`~splicevi.model.SPLICEVI.differential_splicing` when every sample (donor, channel,
plate; the registered batch key or ``sample_key``) of the compared cells lies inside one of the two
groups, e.g. a condition, a donor or any sample-sheet column constant within a sample. Cells of one
sample share the sample's splicing, so they are not independent replicates: the samples are the
units (:mod:`splicevi.stats.pseudobulk`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._constants import EVENT_ID_COLUMN
from ..stats import differential as dstats
from ..stats import pseudobulk as pb

#: Short name of the test (the ``test`` column and ``attrs["splicevi_ds"]["test"]``).
TEST_NAME = "pseudobulk Dirichlet-multinomial LRT over samples"


def samples_nested_in_groups(
    samples: np.ndarray, cells1: np.ndarray, cells2: np.ndarray, min_samples: int = 2
) -> bool:
    """True when no sample has cells in both groups and each group has >= min_samples samples."""
    samples = np.asarray(samples, dtype=object)
    s1 = set(pd.unique(samples[np.asarray(cells1)]))
    s2 = set(pd.unique(samples[np.asarray(cells2)]))
    if any(pd.isna(s) for s in s1 | s2):
        return False
    return not (s1 & s2) and len(s1) >= min_samples and len(s2) >= min_samples


def sample_labels(model, adata, sample_key: str | None = None) -> np.ndarray | None:
    """Sample label of every cell: the ``sample_key`` annotation, else the registered batch.

    ``None`` when no ``sample_key`` is given and the model has no batch key (one batch).
    """
    from scvi import REGISTRY_KEYS

    from ..stats.contrasts import group_labels

    if sample_key is not None:
        return group_labels(adata, sample_key).to_numpy(dtype=object)
    manager = model.get_anndata_manager(adata, required=True)
    state = manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY)
    if state.original_key in (None, "_scvi_batch"):
        return None
    codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel().astype(np.int64)
    return np.asarray(state.categorical_mapping, dtype=object)[codes]


def _describe(names) -> str:
    names = sorted(map(str, names))
    return ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")


def check_samples(samples: np.ndarray, cells1: np.ndarray, cells2: np.ndarray, min_samples: int = 2) -> None:
    """Raise ``ValueError`` saying why the sample-level test cannot run on these groups (and the fix)."""
    samples = np.asarray(samples, dtype=object)
    lab1, lab2 = samples[np.asarray(cells1)], samples[np.asarray(cells2)]
    if pd.isna(lab1).any() or pd.isna(lab2).any():
        raise ValueError("some compared cells have no sample label; give every cell a sample (sample_key)")
    s1, s2 = set(pd.unique(lab1)), set(pd.unique(lab2))
    shared = s1 & s2
    if shared:
        raise ValueError(
            f"samples {_describe(shared)} have cells in both groups, so the groups are not unions of samples; "
            "the sample-level test needs every sample inside one group (use design='labels' to test cells, or a "
            "sample_key that is nested in the groups)"
        )
    if len(s1) < min_samples or len(s2) < min_samples:
        raise ValueError(
            f"too few samples for a sample-level test: group 1 has {len(s1)} sample(s) ({_describe(s1)}), group 2 "
            f"has {len(s2)} ({_describe(s2)}); at least {min_samples} per group are needed to tell a group effect "
            "from sample-to-sample variation. Add biological replicates (samples) to each group, or give "
            "sample_key a finer replicate column; design='labels' would test cells as independent units, which "
            "reads sample-to-sample variation as a group effect"
        )


def per_sample_covariates(
    covariates: pd.DataFrame | None, samples: np.ndarray, names: np.ndarray, cells: np.ndarray
) -> pd.DataFrame | None:
    """Covariates as one row per sample (``names`` order).

    ``covariates`` is indexed by sample label (one row per sample), or has one row per cell of the
    data (then each column must be constant within a sample).
    """
    if covariates is None or covariates.shape[1] == 0:
        return None
    names = np.asarray(names).astype(str)
    index = covariates.index.astype(str)
    if set(names) <= set(index):
        if not index.is_unique:
            raise ValueError(
                "covariates indexed by sample must have one row per sample (duplicate sample ids)"
            )
        out = covariates.copy()
        out.index = index
        return out.loc[names]
    if covariates.shape[0] != np.asarray(samples).shape[0]:
        missing = sorted(set(names) - set(index))[:5]
        raise ValueError(
            f"covariates must be indexed by sample (missing: {missing}) or have one row per cell "
            f"({np.asarray(samples).shape[0]} rows)"
        )
    frame = covariates.iloc[np.asarray(cells)].copy()
    frame.index = np.asarray(samples)[np.asarray(cells)].astype(str)
    grouped = frame.groupby(level=0, sort=True)
    varying = [c for c in frame.columns if (grouped[c].nunique(dropna=False) > 1).any()]
    if varying:
        raise ValueError(
            f"covariate(s) {varying} vary within a sample; a sample-level covariate must be constant "
            "within each sample"
        )
    return grouped.first().loc[names]


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
    quasi: bool = True,
) -> pd.DataFrame:
    """DS with samples as units.

    `adata` is the model's registered data (MuData or AnnData),
    `cells1/cells2` integer cell indices, `samples` one label per cell of adata (object array).
    Returns the standard DS table of `level` ("junction": index junction_id; "event": index
    event_id) with at least the columns of stats.differential.junction_table / event_level that the
    CLI and plots read: effect_size, pvalue, qvalue, log10_pvalue, is_ds_fdr, est_psi1, est_psi2,
    emp_psi1, emp_psi2, emp_effect, n_obs_group1, n_obs_group2, junction_id (junction level),
    event_id, gene_name (+ its own, e.g. n_samples_group1/2); sorted strongest first
    (stats.differential.sort_table). Untestable rows: pvalue 1. Raises ValueError with a clear
    message when a group has fewer than min_samples samples.

    The reads of each sample's cells are summed (pseudobulk) and each ATSE is tested by a
    Dirichlet-multinomial GLM likelihood-ratio test of the group term over samples
    (:func:`splicevi.stats.pseudobulk.dm_glm_test`; per-sample ``covariates`` enter both models).
    The test is per ATSE: **junction rows carry their ATSE's p-value and q-value** (Benjamini–
    Hochberg over ATSEs), with the junction's own pseudobulk ΔPSI as ``effect_size``: the mean over
    group 1's samples of the per-sample PSI minus that of group 2 (each sample counts once; in
    [−1, 1]). An ATSE is called (``is_ds_fdr`` of the event table) when its q-value is at most
    ``fdr_target`` and its largest |ΔPSI| is at least ``delta``. A junction is called when its
    ATSE passes that screen, its own test (``junction_pvalue``: the same GLM test of its reads
    against the rest of its ATSE) is confirmed stage-wise (``junction_padj``, Holm–Shaffer within
    the ATSE, at ``fdr_target`` × screened / tested ATSEs; :func:`splicevi.stats.pseudobulk.
    stagewise_confirmation`) and its |ΔPSI| is at least ``delta``: so a junction is not called
    only because its ATSE changed. ``proba_ds`` is
    ``1 − qvalue`` (not a posterior probability; kept for the tools that rank by it).
    ``welch_pvalue`` is the peer test, a Welch t-test of the per-sample PSI of the junction.
    """
    if level not in ("junction", "event"):
        raise ValueError(f"level must be 'junction' or 'event', got {level!r}")
    cells1 = np.asarray(cells1, dtype=np.int64)
    cells2 = np.asarray(cells2, dtype=np.int64)
    samples = np.asarray(samples, dtype=object)
    check_samples(samples, cells1, cells2, min_samples)
    cells = np.concatenate([cells1, cells2])
    k, n = model._observed_counts(adata, cells)
    var, _ = model._splicing_var(adata, model.n_genes)
    codes = model.module.junc2atse.cpu().numpy()
    counts, names = pb.pseudobulk(k, samples[cells])
    in1 = set(map(str, pd.unique(samples[cells1])))
    group = np.array([s in in1 for s in names])
    cov = per_sample_covariates(covariates, samples, names, cells)
    totals = pb.atse_totals(counts, codes)
    dm = pb.dm_glm_test(counts, codes, group, covariates=cov, quasi=quasi)
    log_p_junction = pb.junction_tests(counts, codes, group, covariates=cov, atse_result=dm)
    confirmed, adjusted = pb.stagewise_confirmation(dm.log_pvalue, dm.atse, log_p_junction, codes, fdr_target)
    welch = pb.welch_test(counts, totals, group)
    row_of_atse = np.searchsorted(dm.atse, codes)
    log_p = dm.log_pvalue[row_of_atse]
    q_atse = dstats.bh_qvalues(dm.log_pvalue)
    q = q_atse[row_of_atse]
    effect = np.clip(np.nan_to_num(welch.effect, nan=0.0), -1.0, 1.0)
    emp1, obs1 = dstats.pooled_psi(k, n, np.arange(cells1.size))
    emp2, obs2 = dstats.pooled_psi(k, n, np.arange(cells1.size, cells.size))
    table = pd.DataFrame(
        {
            "proba_ds": 1.0 - q,
            "pvalue": np.exp(log_p),
            "qvalue": q,
            "is_ds_fdr": confirmed & (np.abs(effect) >= delta),
            "effect_size": effect,
            "log10_pvalue": log_p / np.log(10.0),
            "est_psi1": welch.psi1,
            "est_psi2": welch.psi2,
            "emp_psi1": emp1,
            "emp_psi2": emp2,
            "emp_effect": emp1 - emp2,
            "n_obs_group1": obs1.astype(np.int64),
            "n_obs_group2": obs2.astype(np.int64),
            "n_samples_group1": welch.n1.astype(np.int64),
            "n_samples_group2": welch.n2.astype(np.int64),
            "lr_statistic": dm.lr[row_of_atse],
            "lr_df": dm.df[row_of_atse].astype(np.int64),
            "dm_concentration": dm.concentration[row_of_atse],
            "ql_dispersion": dm.dispersion[row_of_atse],
            "junction_pvalue": np.exp(log_p_junction),
            "junction_padj": adjusted,
            "welch_pvalue": welch.pvalue,
        },
        index=pd.Index(var.index, name="junction_id"),
    )
    table["junction_id"] = var.index.to_numpy()
    table[EVENT_ID_COLUMN] = var[EVENT_ID_COLUMN].to_numpy()
    table["gene_name"] = var["gene_name"].to_numpy() if "gene_name" in var else None
    if level == "event":
        table = _event_table(table, codes, q_atse, dm, delta, fdr_target)
    table = dstats.sort_table(table)
    table["design"] = "samples"
    table["test"] = TEST_NAME
    n1, n2 = int(group.sum()), int((~group).sum())
    table.attrs["splicevi_ds"] = {
        "design": "samples",
        "test": TEST_NAME,
        "reason": f"every sample lies inside one group ({n1} vs {n2} samples)",
    }
    return table


def _event_table(
    junctions: pd.DataFrame,
    codes: np.ndarray,
    q_atse: np.ndarray,
    dm: pb.DMTestResult,
    delta: float,
    fdr_target: float,
) -> pd.DataFrame:
    """One row per ATSE: its test, its junction with the largest |ΔPSI| (``best_junction``)."""
    order, starts, atse = dstats.event_segments(codes)
    row = np.searchsorted(dm.atse, atse)
    sizes = np.diff(np.r_[starts, order.size])
    seg = np.repeat(np.arange(starts.size), sizes)
    abs_eff = junctions["effect_size"].abs().to_numpy()[order]
    best = order[np.lexsort((-abs_eff, seg))[starts]]
    max_abs = np.abs(junctions["effect_size"].to_numpy()[best])
    emp = np.abs(junctions["emp_effect"].to_numpy(dtype=float))[order]
    emp_max = np.maximum.reduceat(np.where(np.isfinite(emp), emp, -np.inf), starts)
    q = q_atse[row]
    ids = junctions[EVENT_ID_COLUMN].to_numpy()[best]
    out = pd.DataFrame(
        {
            EVENT_ID_COLUMN: ids,
            "gene_name": junctions["gene_name"].to_numpy()[best],
            "best_junction": junctions["junction_id"].to_numpy()[best],
            "effect_size": junctions["effect_size"].to_numpy()[best],
            "max_abs_dpsi": max_abs,
            "proba_ds": 1.0 - q,
            "pvalue": np.exp(dm.log_pvalue[row]),
            "qvalue": q,
            "log10_pvalue": dm.log_pvalue[row] / np.log(10.0),
            "is_ds_fdr": dstats.fdr_calls(q, fdr_target) & (max_abs >= delta),
            "n_junctions": sizes,
            "emp_max_abs_dpsi": np.where(np.isfinite(emp_max), emp_max, np.nan),
            "lr_statistic": dm.lr[row],
            "lr_df": dm.df[row].astype(np.int64),
            "dm_concentration": dm.concentration[row],
            "ql_dispersion": dm.dispersion[row],
        },
        index=pd.Index(ids, name=EVENT_ID_COLUMN),
    )
    for col in ("est_psi1", "est_psi2", "emp_psi1", "emp_psi2"):
        out[col] = junctions[col].to_numpy()[best]
    out["emp_effect"] = out["emp_psi1"] - out["emp_psi2"]
    for col in ("n_obs_group1", "n_obs_group2", "n_samples_group1", "n_samples_group2"):
        out[col] = np.maximum.reduceat(junctions[col].to_numpy()[order], starts)
    return out
