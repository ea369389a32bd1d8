"""Differential expression with samples as the units: pseudobulk gene counts and DESeq2.

When the compared groups are unions of samples (a condition across donors or channels), cells of a
sample are not independent replicates, and a cell-level test reads donor-to-donor variation as a
group effect (Squair et al. 2021, Nat. Commun. 12:5692). Here each sample's gene counts are summed
over its cells and the samples are tested by DESeq2's negative-binomial GLM (PyDESeq2: size factors,
gene-wise dispersions shrunk towards a trend, Wald test of the group term; per-sample covariates
enter the design).
"""

from __future__ import annotations

import inspect
import logging
import re
import warnings

import numpy as np
import pandas as pd

from .differential import bh_qvalues
from .pseudobulk import pseudobulk

log = logging.getLogger("splicevi")

#: Short name of the test (the DE table's ``test`` column).
TEST_NAME = "pseudobulk DESeq2 (negative binomial GLM, Wald) over samples"


def _clean(value) -> str:
    """A factor level PyDESeq2 accepts (no underscores or spaces)."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", str(value))


def deseq2_test(
    counts: np.ndarray,
    genes: pd.Index,
    group: np.ndarray,
    covariates: pd.DataFrame | None = None,
    fdr_target: float = 0.05,
    n_cpus: int = 1,
) -> pd.DataFrame:
    """DESeq2 Wald test of group 1 against group 2 over samples, per gene.

    Parameters
    ----------
    counts
        Samples × genes pseudobulk counts.
    genes
        Gene ids (columns of ``counts``).
    group
        Boolean per sample: True for group 1.
    covariates
        Per-sample covariates (rows in the order of ``counts``), added to the design.
    fdr_target
        Target FDR of ``is_de_fdr`` (Benjamini–Hochberg over the tested genes).
    n_cpus
        Processes of PyDESeq2.

    Returns
    -------
    pd.DataFrame
        Per gene (index ``gene_id``): ``lfc_mean`` (DESeq2's log2 fold change group1/group2, the
        scale of the labels design's ``lfc_mean``), ``lfc_se``, ``base_mean``, ``stat``,
        ``pvalue``, ``qvalue``, ``proba_de`` (``1 − qvalue``, for the volcano and ranking tools),
        ``log10_pvalue``, ``is_de_fdr``; genes without counts have p-value 1.
    """
    try:
        from pydeseq2.dds import DeseqDataSet
        from pydeseq2.default_inference import DefaultInference
        from pydeseq2.ds import DeseqStats
    except ImportError as err:  # pragma: no cover - a dependency of the package
        raise ImportError(
            "sample-level differential expression needs PyDESeq2: pip install pydeseq2"
        ) from err
    group = np.asarray(group, dtype=bool)
    counts = np.rint(np.asarray(counts, dtype=float)).astype(np.int64)
    names = [f"s{i}" for i in range(counts.shape[0])]
    meta = pd.DataFrame({"group": np.where(group, "group1", "group2")}, index=names)
    terms = []
    if covariates is not None:
        for i, col in enumerate(covariates.columns):
            v = covariates[col]
            key = f"cov{i}"
            if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
                meta[key] = v.to_numpy(dtype=float)
            else:
                meta[key] = [_clean(x) for x in v.astype(str)]
            terms.append(key)
    keep = counts.sum(axis=0) > 0
    frame = pd.DataFrame(counts[:, keep], index=names, columns=[f"g{i}" for i in np.nonzero(keep)[0]])
    inference = DefaultInference(n_cpus=n_cpus)
    params = inspect.signature(DeseqDataSet).parameters
    design = (
        dict(design="~" + " + ".join([*terms, "group"]))
        if "design" in params
        else dict(design_factors=[*terms, "group"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(
            counts=frame, metadata=meta, refit_cooks=True, inference=inference, quiet=True, **design
        )
        dds.deseq2()
        res = DeseqStats(dds, contrast=["group", "group1", "group2"], inference=inference, quiet=True)
        res.summary()
    out = res.results_df
    pvalue = np.ones(counts.shape[1])
    lfc2 = np.zeros(counts.shape[1])
    se = np.full(counts.shape[1], np.nan)
    stat = np.zeros(counts.shape[1])
    base = np.zeros(counts.shape[1])
    pos = np.nonzero(keep)[0]
    p = out["pvalue"].to_numpy(dtype=float)
    pvalue[pos] = np.where(np.isfinite(p), p, 1.0)
    lfc2[pos] = np.nan_to_num(out["log2FoldChange"].to_numpy(dtype=float))
    se[pos] = out["lfcSE"].to_numpy(dtype=float)
    stat[pos] = np.nan_to_num(out["stat"].to_numpy(dtype=float))
    base[pos] = out["baseMean"].to_numpy(dtype=float)
    log_p = np.log(np.maximum(pvalue, 1e-300))
    q = bh_qvalues(log_p)
    return pd.DataFrame(
        {
            "lfc_mean": lfc2,
            "lfc_se": se,
            "base_mean": base,
            "stat": stat,
            "pvalue": pvalue,
            "qvalue": q,
            # 1 − q-value: not a posterior probability; for the tools that rank and plot by it
            "proba_de": 1.0 - q,
            "log10_pvalue": log_p / np.log(10.0),
            "is_de_fdr": q <= fdr_target,
        },
        index=pd.Index(genes, name="gene_id"),
    )


def pseudobulk_de(
    gene_counts,
    samples: np.ndarray,
    cells1: np.ndarray,
    cells2: np.ndarray,
    genes: pd.Index,
    covariates: pd.DataFrame | None = None,
    fdr_target: float = 0.05,
) -> pd.DataFrame:
    """Sum gene counts per sample over the compared cells and run :func:`deseq2_test`.

    ``covariates`` has one row per sample, in sorted sample order (see
    :func:`splicevi.stats.pseudobulk.pseudobulk`). Adds ``n_samples_group1`` / ``n_samples_group2``
    and the groups' mean counts per million (``cpm1``, ``cpm2``).
    """
    samples = np.asarray(samples, dtype=object)
    cells = np.concatenate([np.asarray(cells1), np.asarray(cells2)])
    counts, names = pseudobulk(gene_counts[cells], samples[cells])
    in1 = set(map(str, pd.unique(samples[np.asarray(cells1)])))
    group = np.array([s in in1 for s in names])
    table = deseq2_test(counts, genes, group, covariates=covariates, fdr_target=fdr_target)
    cpm = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0) * 1e6
    table["cpm1"] = cpm[group].mean(axis=0)
    table["cpm2"] = cpm[~group].mean(axis=0)
    table["n_samples_group1"] = int(group.sum())
    table["n_samples_group2"] = int((~group).sum())
    return table
