"""Matching the cells of the two modalities (junction and gene counts) and barcode allow-lists."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from ._tables import InputError
from .readers_junctions import read_barcodes

_SUFFIX = re.compile(r"-\d+$")


@dataclass
class BarcodeMatch:
    """Outcome of matching two cell lists."""

    n_junction_cells: int
    n_gene_cells: int
    n_common: int
    n_junction_only: int
    n_gene_only: int
    normalised: bool  # matched after removing a Cell Ranger-style "-1" suffix

    def as_dict(self) -> dict:
        """The match counts as a plain dict (for the ingest summary and provenance)."""
        return dict(self.__dict__)


def _strip(ids: pd.Index) -> pd.Index:
    return pd.Index(ids.astype(str).str.replace(_SUFFIX, "", regex=True))


def match_cells(
    junctions: ad.AnnData,
    genes: ad.AnnData,
    genes_source: str = "gene counts",
    junctions_source: str = "junction counts",
) -> tuple[ad.AnnData, ad.AnnData, BarcodeMatch]:
    """Restrict both AnnData to their common cells, in the junctions' order.

    Barcodes are compared as given; if that finds fewer common cells than comparing them without a
    trailing ``-<n>`` (Cell Ranger adds ``-1``, STARsolo does not), the suffix-free ids are used and
    the junction ids are kept.

    Raises
    ------
    InputError
        No barcode in common (with examples of each side and the usual causes).
    """
    j_ids, g_ids = junctions.obs_names, genes.obs_names
    exact = j_ids.intersection(g_ids)
    j_s, g_s = _strip(j_ids), _strip(g_ids)
    stripped = j_s.intersection(g_s) if j_s.is_unique and g_s.is_unique else pd.Index([])
    normalised = len(stripped) > len(exact)
    if normalised:
        genes = genes.copy()
        genes.obs_names = g_s
        junctions = junctions.copy()
        junctions.obs_names = j_s
        common = stripped
    else:
        common = exact
    if len(common) == 0:
        raise InputError(
            genes_source,
            f"no cell barcode in common with {junctions_source} (junctions e.g. {list(j_ids[:3])}, "
            f"genes e.g. {list(g_ids[:3])})",
            "give junction and gene counts of the same sample/run; check barcode suffixes and the cell ids "
            "in the sample sheet",
        )
    order = junctions.obs_names[junctions.obs_names.isin(common)]
    info = BarcodeMatch(
        len(j_ids), len(g_ids), len(common), len(j_ids) - len(common), len(g_ids) - len(common), normalised
    )
    return junctions[order].copy(), genes[order].copy(), info


def apply_allowlist(adata: ad.AnnData, path: str | os.PathLike) -> tuple[ad.AnnData, int]:
    """Keep the cells listed in a barcode file (e.g. STARsolo ``Gene/filtered/barcodes.tsv``).

    Returns the subset and the number of listed barcodes absent from ``adata``.
    """
    allowed = pd.Index(read_barcodes(path))
    keep = adata.obs_names.isin(allowed)
    if not keep.any():
        allowed_s, names_s = _strip(allowed), _strip(adata.obs_names)
        keep = names_s.isin(allowed_s)
        if not keep.any():
            raise InputError(
                path,
                f"none of the {len(allowed)} listed barcodes is among the {adata.n_obs} cells read "
                f"(listed e.g. {list(allowed[:3])}, read e.g. {list(adata.obs_names[:3])})",
                "pass the barcode list of the same sample/run",
            )
    return adata[np.asarray(keep)].copy(), int(len(allowed) - keep.sum())
