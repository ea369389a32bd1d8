"""Differential expression of clusters found on the same data: the held-out gene counts test.

Clusters of the model's latent were chosen because their cells differ in the counts; testing their
expression on those counts finds differences where nothing differs (double dipping). The gene
counts are split with the junction reads (:func:`splicevi.data.thinning.split_data`, run by
``splicevi cluster --model``), the clusters found on the fit parts' latent, and
:func:`heldout_de` tests them on the held-out gene counts with
:func:`splicevi.stats.heldout_de.heldout_de_test`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.thinning import heldout_gene_parts
from ..stats.differential import family_bh_qvalues
from ..stats.heldout_de import TEST_NAME, heldout_de_test
from ._ds_clusters import _expression_anndata

#: Key of ``DataFrame.attrs`` with the design, the test and the reason of a DE table.
DE_ATTRS_KEY = "splicevi_de"


def heldout_de(
    model,
    adata,
    cells1: np.ndarray,
    cells2: np.ndarray,
    *,
    delta: float,
    fdr_target: float,
    genes: pd.Index,
) -> pd.DataFrame:
    """Differential expression valid for groups chosen on the same data: test on held-out gene counts.

    Parameters
    ----------
    model
        A trained SPLICEVI with an expression modality.
    adata
        Its registered MuData (``None``: the training data).
    cells1, cells2
        Integer indices of the two groups' cells.
    delta
        Calls need ``|lfc_mean| ≥ delta`` (log2).
    fdr_target
        Target FDR of the calls.
    genes
        Gene ids in the model's order.

    Returns
    -------
    pd.DataFrame
        :func:`splicevi.stats.heldout_de.heldout_de_test`'s table with ``design`` ("clusters"),
        ``test`` and ``attrs[DE_ATTRS_KEY]``.

    Raises
    ------
    ValueError
        When the data have no held-out gene counts (the message says how to make them).
    """
    rna = _expression_anndata(model, adata)
    if rna is None:
        raise ValueError("held-out gene counts need the MuData layout with an 'rna' modality registered")
    layer = model.adata_manager.registry.get("setup_args", {}).get("rna_layer")
    _, held, record = heldout_gene_parts(rna, layer)
    table = heldout_de_test(held[:, : len(genes)], cells1, cells2, genes, fdr_target=fdr_target, delta=delta)
    table["design"] = "clusters"
    table["test"] = TEST_NAME
    table.attrs[DE_ATTRS_KEY] = {
        "design": "clusters",
        "test": TEST_NAME,
        "reason": (
            f"groups tested on held-out gene counts ({record.get('method', 'nb')} split, "
            f"{record.get('fraction', 0.5):.0%} of the counts held out, seed {record.get('seed')})"
        ),
    }
    return table


def family_calls_de(tables: list[pd.DataFrame], delta: float, fdr_target: float) -> list[pd.DataFrame]:
    """Re-adjust the q-values and calls of several held-out contrasts as one family (in place; returned).

    The contrasts of one clustering are tested on the same held-out counts and read as one result;
    with Benjamini–Hochberg per contrast, each of ``G`` contrasts may make a false call with
    probability up to the target on data without any difference (measured: 2 of 18 Leiden contrasts
    with a call, ``tests/model/test_de_clusters.py``). Adjusted together
    (:func:`splicevi.stats.differential.family_bh_qvalues`), the FDR holds over all their calls.
    A single table is left as it is.
    """
    if len(tables) < 2:
        return tables
    qs = family_bh_qvalues([t["log10_pvalue"].to_numpy(dtype=np.float64) * np.log(10.0) for t in tables])
    for table, q in zip(tables, qs, strict=True):
        table["qvalue"] = q
        table["proba_de"] = 1.0 - q
        testable = table["lfc_se"].notna().to_numpy()
        table["is_de_fdr"] = (q <= fdr_target) & (table["lfc_mean"].abs().to_numpy() >= delta) & testable
        own = table.attrs.get(DE_ATTRS_KEY, {})
        table.attrs[DE_ATTRS_KEY] = {
            **own,
            "reason": f"{own.get('reason', '')}; q-values over all {len(tables)} cluster contrasts together",
        }
    return tables
